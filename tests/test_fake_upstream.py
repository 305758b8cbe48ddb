"""Tests of the fake LLM upstream, through the official SDKs and raw aiohttp."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.helpers import until
from tierwise.testing import FakeUpstream

SRC = Path(__file__).resolve().parents[1] / "src"
TOOLS_OA: list[Any] = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
]
TOOLS_AN: list[Any] = [
    {"name": "lookup", "description": "Look up.", "input_schema": {"type": "object"}},
    {"name": "other", "description": "Other.", "input_schema": {"type": "object"}},
]


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(seed=7, retry_after_s=3.0, hang_s=10.0) as up:
        yield up


@pytest_asyncio.fixture
async def oa(upstream: FakeUpstream) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=upstream.base_url + "/v1", api_key="x", max_retries=0)
    async with client:
        yield client


@pytest_asyncio.fixture
async def an(upstream: FakeUpstream) -> AsyncIterator[AsyncAnthropic]:
    client = AsyncAnthropic(base_url=upstream.base_url, api_key="x", max_retries=0)
    async with client:
        yield client


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _oa_body(text: str, model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": _user(text), **extra}


def _an_body(text: str, model: str = "c", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": _user(text), **extra}


async def _post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **kw: Any
) -> tuple[int, bytes]:
    async with http.post(url, json=body, **kw) as resp:
        return resp.status, await resp.read()


def _sse_data(raw: bytes) -> list[str]:
    return [ln[6:] for ln in raw.decode().split("\n") if ln.startswith("data: ")]


@pytest.mark.asyncio
async def test_openai_answer_usage_and_recording(upstream: FakeUpstream, oa: AsyncOpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France, in one word please?"},
    ]
    r = await oa.chat.completions.create(model="cheap", messages=messages)
    content = "Answer from cheap: " + messages[1]["content"][:40]
    assert r.choices[0].message.content == content
    assert r.object == "chat.completion" and r.model == "cheap" and r.id.startswith("chatcmpl-")
    assert r.choices[0].finish_reason == "stop"
    chars = len("Be brief.") + len(messages[1]["content"])
    assert r.usage is not None
    assert r.usage.prompt_tokens == chars // 4 + 2
    assert r.usage.completion_tokens == len(content) // 4 + 1
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    req = upstream.requests[0]
    assert (req.path, req.model, req.fault, req.stream) == (
        "/v1/chat/completions",
        "cheap",
        None,
        False,
    )
    assert req.body["messages"] == messages and req.headers["authorization"] == "Bearer x"
    assert upstream.count() == 1 and upstream.count("cheap") == 1 and upstream.count("x") == 0


@pytest.mark.asyncio
async def test_openai_directives_reply_usage_cached(oa: AsyncOpenAI) -> None:
    r = await oa.chat.completions.create(
        model="m", messages=_user('Hi [[reply="fixed text here"]] [[cached=5]]')
    )
    assert r.choices[0].message.content == "fixed text here"
    assert r.usage is not None and r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 5
    r = await oa.chat.completions.create(
        model="m", messages=_user("Hi [[reply=short]] [[usage=none]]")
    )
    assert r.choices[0].message.content == "short" and r.usage is None
    r = await oa.chat.completions.create(
        model="m", messages=_user("  Hello   [[latency=0]]  world ")
    )
    assert r.choices[0].message.content == "Answer from m: Hello world"


@pytest.mark.asyncio
async def test_openai_stream(oa: AsyncOpenAI) -> None:
    stream = await oa.chat.completions.create(
        model="m",
        messages=_user("one two three four five"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Answer from m: one two three four five"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(text) // 4 + 1
    assert all(c.object == "chat.completion.chunk" and c.model == "m" for c in chunks)


@pytest.mark.asyncio
async def test_openai_json_mode_and_logprobs(oa: AsyncOpenAI) -> None:
    r = await oa.chat.completions.create(
        model="m",
        messages=_user("Rate it [[confidence=0.3]] [[reply=ok]]"),
        response_format={"type": "json_object"},
    )
    assert json.loads(r.choices[0].message.content or "") == {"answer": "ok", "confidence": 0.3}
    r = await oa.chat.completions.create(
        model="m",
        messages=_user("x"),
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {}}},
    )
    assert json.loads(r.choices[0].message.content or "")["confidence"] == 0.9
    r = await oa.chat.completions.create(
        model="m", messages=_user("a b [[logprob=-2.5]]"), logprobs=True
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None
    assert len(lp.content) == len((r.choices[0].message.content or "").split())
    assert {t.logprob for t in lp.content} == {-2.5}
    assert "".join(t.token for t in lp.content) == r.choices[0].message.content
    r = await oa.chat.completions.create(model="m", messages=_user("a b"), logprobs=True)
    assert r.choices[0].logprobs is not None and r.choices[0].logprobs.content is not None
    assert r.choices[0].logprobs.content[0].logprob == -0.05


@pytest.mark.asyncio
async def test_openai_tool_calls(oa: AsyncOpenAI) -> None:
    r = await oa.chat.completions.create(
        model="m", messages=_user("Go [[tool=other]]"), tools=TOOLS_OA
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = (choice.message.tool_calls or [])[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "other" and json.loads(call.function.arguments) == {"x": 1}
    forced: Any = {"type": "function", "function": {"name": "lookup"}}
    r = await oa.chat.completions.create(
        model="m", messages=_user("Go"), tools=TOOLS_OA, tool_choice=forced
    )
    call = (r.choices[0].message.tool_calls or [])[0]
    assert call.type == "function" and call.function.name == "lookup"
    r = await oa.chat.completions.create(
        model="m", messages=_user("Go [[tool]]"), tools=TOOLS_OA, tool_choice="none"
    )
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason == "stop"
    r = await oa.chat.completions.create(model="m", messages=_user("Go"), tools=TOOLS_OA)
    assert r.choices[0].message.tool_calls is None
    follow_up: list[Any] = [
        *_user("Go [[tool]]"),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    r = await oa.chat.completions.create(model="m", messages=follow_up, tools=TOOLS_OA)
    assert (
        r.choices[0].message.content == "Answer from m: Go" and r.choices[0].finish_reason == "stop"
    )
    stream = await oa.chat.completions.create(
        model="m", messages=_user("Go [[tool]]"), tools=TOOLS_OA, stream=True
    )
    chunks = [c async for c in stream]
    first = (chunks[0].choices[0].delta.tool_calls or [])[0]
    assert first.function is not None and first.function.name == "lookup" and first.id
    args = "".join(
        (tc.function.arguments or "")
        for c in chunks
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function is not None
    )
    assert json.loads(args) == {"x": 1}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_anthropic_answer_and_stream(upstream: FakeUpstream, an: AsyncAnthropic) -> None:
    m = await an.messages.create(
        model="claude-x", max_tokens=64, system="Sys", messages=_user("Hello there [[cached=2]]")
    )
    assert m.id.startswith("msg_") and m.type == "message" and m.role == "assistant"
    assert m.model == "claude-x" and m.stop_reason == "end_turn"
    text = "Answer from claude-x: Hello there"
    assert m.content[0].type == "text" and m.content[0].text == text
    prompt = (3 + len("Hello there [[cached=2]]")) // 4 + 2
    assert m.usage.input_tokens == prompt - 2 and m.usage.cache_read_input_tokens == 2
    assert m.usage.output_tokens == len(text) // 4 + 1
    async with an.messages.stream(
        model="claude-x", max_tokens=64, messages=_user("a b c d e")
    ) as stream:
        kinds = [ev.type async for ev in stream]
        final = await stream.get_final_message()
    for kind in ("message_start", "content_block_start", "content_block_stop", "message_delta"):
        assert kind in kinds
    assert kinds[-1] == "message_stop"
    assert (
        final.content[0].type == "text"
        and final.content[0].text == "Answer from claude-x: a b c d e"
    )
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 8
    assert upstream.requests[-1].stream and upstream.requests[-1].path == "/v1/messages"
    assert "anthropic-version" in upstream.requests[-1].headers


@pytest.mark.asyncio
async def test_anthropic_tool_use(an: AsyncAnthropic) -> None:
    m = await an.messages.create(
        model="c", max_tokens=64, messages=_user("Go [[tool=other]]"), tools=TOOLS_AN
    )
    block = m.content[0]
    assert m.stop_reason == "tool_use" and block.type == "tool_use"
    assert block.name == "other" and block.input == {"x": 1} and block.id.startswith("toolu_")
    async with an.messages.stream(
        model="c",
        max_tokens=64,
        messages=_user("Go"),
        tools=TOOLS_AN,
        tool_choice={"type": "tool", "name": "lookup"},
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "lookup" and block.input == {"x": 1}
    assert final.stop_reason == "tool_use"


@pytest.mark.asyncio
async def test_models_endpoint(upstream: FakeUpstream, oa: AsyncOpenAI, an: AsyncAnthropic) -> None:
    ids = [m.id async for m in oa.models.list()]
    assert ids == ["fake-small", "fake-large"]
    assert [m.id async for m in an.models.list()] == ids
    assert upstream.requests[0].path == "/v1/models" and upstream.requests[0].model is None


ERRORS = [
    ("500", 500, "server_error", None, "api_error"),
    ("503", 503, "server_error", None, "overloaded_error"),
    ("429", 429, "rate_limit_exceeded", "rate_limit_exceeded", "rate_limit_error"),
    (
        "context_length",
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "invalid_request_error",
    ),
    (
        "content_policy",
        400,
        "invalid_request_error",
        "content_policy_violation",
        "invalid_request_error",
    ),
    ("auth", 401, "invalid_request_error", "invalid_api_key", "authentication_error"),
    ("bad_request", 400, "invalid_request_error", None, "invalid_request_error"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
async def test_error_faults(
    upstream: FakeUpstream,
    oa: AsyncOpenAI,
    an: AsyncAnthropic,
    case: tuple[str, int, str, str | None, str],
) -> None:
    fault, status, oa_type, oa_code, an_type = case
    with pytest.raises(openai.APIStatusError) as oe:
        await oa.chat.completions.create(model="m", messages=_user(f"hi [[fault={fault}]]"))
    assert oe.value.status_code == status
    assert oe.value.type == oa_type and oe.value.code == oa_code
    assert isinstance(oe.value.body, dict)
    assert set(oe.value.body) == {"message", "type", "param", "code"}
    upstream.add_fault(fault)
    with pytest.raises(anthropic.APIStatusError) as ae:
        await an.messages.create(model="c", max_tokens=8, messages=_user("hi"))
    assert ae.value.status_code == status
    body = ae.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == an_type and body["error"]["message"]
    assert [r.fault for r in upstream.requests] == [fault, fault]


@pytest.mark.asyncio
async def test_error_messages_and_retry_after(oa: AsyncOpenAI, an: AsyncAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as oe:
        await oa.chat.completions.create(model="m", messages=_user("[[fault=context_length]]"))
    assert "maximum context length is 8192 tokens" in oe.value.message
    assert oe.value.param == "messages"
    with pytest.raises(anthropic.BadRequestError) as ae:
        await an.messages.create(
            model="c", max_tokens=8, messages=_user("[[fault=context_length]]")
        )
    assert "prompt is too long: 9000 tokens > 8192 maximum" in ae.value.message
    with pytest.raises(openai.BadRequestError) as oe:
        await oa.chat.completions.create(model="m", messages=_user("[[fault=content_policy]]"))
    assert "content management policy" in oe.value.message
    with pytest.raises(anthropic.BadRequestError) as ae:
        await an.messages.create(
            model="c", max_tokens=8, messages=_user("[[fault=content_policy]]")
        )
    assert "content filtering policy" in ae.value.message
    with pytest.raises(openai.RateLimitError) as re_:
        await oa.chat.completions.create(model="m", messages=_user("[[fault=429 retry_after=2]]"))
    assert re_.value.response.headers["retry-after"] == "2"
    with pytest.raises(anthropic.RateLimitError) as ar:
        await an.messages.create(model="c", max_tokens=8, messages=_user("[[fault=429]]"))
    assert ar.value.response.headers["retry-after"] == "3"
    with pytest.raises(anthropic.RateLimitError) as ar:
        await an.messages.create(
            model="c", max_tokens=8, messages=_user("[[fault=429 retry_after=0.5]]")
        )
    assert ar.value.response.headers["retry-after"] == "0.5"


@pytest.mark.asyncio
async def test_fault_precedence_and_model_matching(upstream: FakeUpstream, oa: AsyncOpenAI) -> None:
    upstream.add_fault("auth", model="big", times=2)
    upstream.add_fault("503")
    upstream.set_failure_rate(None, 1.0, fault="500")
    with pytest.raises(openai.InternalServerError) as e:
        await oa.chat.completions.create(model="small", messages=_user("[[fault=bad_request]]"))
    assert e.value.status_code == 503
    with pytest.raises(openai.AuthenticationError):
        await oa.chat.completions.create(model="big", messages=_user("[[fault=bad_request]]"))
    with pytest.raises(openai.BadRequestError):
        await oa.chat.completions.create(model="small", messages=_user("[[fault=bad_request]]"))
    text = "[[fault=auth model=other]] [[fault=429 model=small]] [[fault=500]]"
    with pytest.raises(openai.RateLimitError):
        await oa.chat.completions.create(model="small", messages=_user(text))
    with pytest.raises(openai.InternalServerError) as e:
        await oa.chat.completions.create(model="third", messages=_user(text))
    assert e.value.status_code == 500
    with pytest.raises(openai.AuthenticationError):
        await oa.chat.completions.create(model="big", messages=_user("no directive"))
    with pytest.raises(openai.InternalServerError):
        await oa.chat.completions.create(model="big", messages=_user("random"))
    faults = [r.fault for r in upstream.requests]
    assert faults == ["503", "auth", "bad_request", "429", "500", "auth", "500"]
    upstream.clear()
    assert upstream.requests == [] and upstream.count() == 0
    r = await oa.chat.completions.create(model="big", messages=_user("fine"))
    assert r.choices[0].message.content == "Answer from big: fine"
    with pytest.raises(ValueError, match="unknown fault"):
        upstream.add_fault("nope")


@pytest.mark.asyncio
async def test_header_fault_and_unknown_directive(
    upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    url = upstream.base_url + "/v1/chat/completions"
    async with http.post(
        url, json=_oa_body("hi"), headers={"x-fake-fault": "429 retry_after=4"}
    ) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "4"
    fault = {"x-fake-fault": "auth model=other"}
    status, _ = await _post(http, url, _oa_body("hi [[fault=503]]"), headers=fault)
    assert status == 503
    upstream.add_fault("429", model="m", retry_after=2)
    async with http.post(url, json=_oa_body("hi")) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    status, raw = await _post(http, url, _oa_body("hi [[fault=bogus]]"))
    assert status == 400 and "bogus" in json.loads(raw)["error"]["message"]
    status, raw = await _post(http, url, {"messages": []})
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    async with http.post(url, data=b"{not json") as resp:
        assert resp.status == 400
    status, _ = await _post(http, upstream.base_url + "/v1/nothing", {})
    assert status == 404


@pytest.mark.asyncio
async def test_failure_rate_is_seeded() -> None:
    async def run(seed: int) -> list[str | None]:
        async with FakeUpstream(seed=seed) as up, aiohttp.ClientSession() as http:
            up.set_failure_rate("m", 0.5, fault="503")
            url = up.base_url + "/v1/chat/completions"
            for _ in range(20):
                await _post(http, url, _oa_body("x"))
            await _post(http, url, _oa_body("x", model="other"))
            return [r.fault for r in up.requests]

    first, again, other = await run(1), await run(1), await run(2)
    assert first == again and first != other
    assert 3 <= first[:20].count("503") <= 17 and first[20] is None


@pytest.mark.asyncio
async def test_reset(upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    upstream.add_fault("reset")
    with pytest.raises(aiohttp.ClientConnectionError):
        await _post(http, upstream.base_url + "/v1/chat/completions", _oa_body("x"))
    assert upstream.requests[0].fault == "reset"
    with pytest.raises(aiohttp.ClientConnectionError):
        await _post(http, upstream.base_url + "/v1/messages", _an_body("x [[fault=reset]]"))


@pytest.mark.asyncio
async def test_reset_through_sdk(oa: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await oa.chat.completions.create(model="m", messages=_user("[[fault=reset]]"))


@pytest.mark.asyncio
async def test_hang_times_out_and_stop_is_prompt(
    upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    url = upstream.base_url + "/v1/chat/completions"
    with pytest.raises(TimeoutError):
        await _post(http, url, _oa_body("[[fault=hang]]"), timeout=aiohttp.ClientTimeout(total=0.3))
    pending = asyncio.ensure_future(_post(http, url, _oa_body("[[fault=hang]]")))
    await until(lambda: upstream.count() == 2, what="the second hang received")
    async with asyncio.timeout(5):  # well under the fixture's hang_s of 10 s
        await upstream.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending


@pytest.mark.asyncio
async def test_hang_ends_after_hang_s() -> None:
    async with FakeUpstream(hang_s=0.2) as up, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await _post(http, up.base_url + "/v1/messages", _an_body("[[fault=hang]]"))


@pytest.mark.asyncio
async def test_slow_first_token_and_latency(
    upstream: FakeUpstream, http: aiohttp.ClientSession
) -> None:
    url = upstream.base_url + "/v1/chat/completions"
    started = time.monotonic()
    status, raw = await _post(http, url, _oa_body("hi [[fault=slow_first_token delay=0.3]]"))
    assert status == 200 and time.monotonic() - started >= 0.3
    assert json.loads(raw)["choices"][0]["message"]["content"] == "Answer from m: hi"
    async with (
        asyncio.timeout(5),  # headers come before the 30 s delay, not after it
        http.post(url, json=_oa_body("[[fault=slow_first_token delay=30]]", stream=True)) as resp,
    ):
        assert resp.status == 200 and resp.content.read_nowait() == b""
    started = time.monotonic()
    async with http.post(
        url, json=_oa_body("[[fault=slow_first_token delay=0.3]]", stream=True)
    ) as resp:
        first = await resp.content.readline()
        first_at = time.monotonic() - started
        rest = await resp.read()
    assert first_at >= 0.3 and first.startswith(b"data: ")
    assert rest.endswith(b"data: [DONE]\n\n")
    started = time.monotonic()
    await _post(http, url, _oa_body("hi [[latency=0.2]]"))
    assert time.monotonic() - started >= 0.2


@pytest.mark.asyncio
async def test_cut_stream(upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    url = upstream.base_url + "/v1/chat/completions"
    body = _oa_body("one two three four five six seven [[fault=cut after=3]]", stream=True)
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(url, json=body) as resp:
            assert resp.status == 200
            async for chunk in resp.content.iter_any():
                received += chunk
    data = _sse_data(received)
    assert len(data) == 4 and "[DONE]" not in data
    assert all(json.loads(d)["choices"][0]["finish_reason"] is None for d in data)
    upstream.add_fault("cut")
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            upstream.base_url + "/v1/messages", json=_an_body("a b c d e f", stream=True)
        ) as resp:
            async for chunk in resp.content.iter_any():
                received += chunk
    events = [json.loads(d)["type"] for d in _sse_data(received)]
    assert events.count("content_block_delta") == 2 and "message_stop" not in events


@pytest.mark.asyncio
async def test_cut_non_stream_and_sdk(
    upstream: FakeUpstream, http: aiohttp.ClientSession, oa: AsyncOpenAI
) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await _post(http, upstream.base_url + "/v1/chat/completions", _oa_body("[[fault=cut]]"))
    stream = await oa.chat.completions.create(
        model="m", messages=_user("a b c d e f g [[fault=cut after=1]]"), stream=True
    )
    got: list[str] = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "Answer from"


@pytest.mark.asyncio
async def test_invalid_json(upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    url = upstream.base_url + "/v1/chat/completions"
    status, raw = await _post(http, url, _oa_body("[[fault=invalid_json]]"))
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    status, raw = await _post(http, url, _oa_body("[[fault=invalid_json]]", stream=True))
    data = _sse_data(raw)
    assert status == 200 and data[-1] == "[DONE]"
    bad = [d for d in data[:-1] if not _is_json(d)]
    assert len(bad) == 1
    status, raw = await _post(
        http, upstream.base_url + "/v1/messages", _an_body("[[fault=invalid_json]]", stream=True)
    )
    assert status == 200 and sum(not _is_json(d) for d in _sse_data(raw)) == 1


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.asyncio
async def test_content_faults(oa: AsyncOpenAI, an: AsyncAnthropic) -> None:
    r = await oa.chat.completions.create(model="m", messages=_user("[[fault=empty]]"))
    assert r.choices[0].message.content == "" and r.choices[0].finish_reason == "stop"
    stream = await oa.chat.completions.create(
        model="m", messages=_user("[[fault=empty]]"), stream=True
    )
    chunks = [c async for c in stream]
    assert not any(c.choices[0].delta.content for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    m = await an.messages.create(model="c", max_tokens=8, messages=_user("[[fault=empty]]"))
    assert m.content[0].type == "text" and m.content[0].text == ""
    r = await oa.chat.completions.create(model="m", messages=_user("[[fault=punt]]"))
    assert r.choices[0].message.content == "I don't know."
    m = await an.messages.create(model="c", max_tokens=8, messages=_user("[[fault=punt model=c]]"))
    assert m.content[0].type == "text" and m.content[0].text == "I don't know."
    r = await oa.chat.completions.create(
        model="m",
        messages=_user("[[fault=not_json_content]]"),
        response_format={"type": "json_object"},
    )
    assert not _is_json(r.choices[0].message.content or "")
    assert r.choices[0].message.content == "Sure! here is {broken"


@pytest.mark.asyncio
async def test_runs_as_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tierwise.testing.fake_upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": ""},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 10)
        assert line.startswith("listening on http://127.0.0.1:")
        base = line.split()[-1]
        async with aiohttp.ClientSession() as http:
            status, raw = await _post(http, base + "/v1/chat/completions", _oa_body("ping"))
        assert (
            status == 200
            and json.loads(raw)["choices"][0]["message"]["content"] == "Answer from m: ping"
        )
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
