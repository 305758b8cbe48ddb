"""The gateway server, spoken to by the official OpenAI and Anthropic SDKs and
by raw HTTP, in front of the fake upstream."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.helpers import gateway_config
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "find",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


@pytest.fixture
async def server(upstream: FakeUpstream) -> AsyncIterator[Running]:
    routes = {"auto": {"router": "heuristic", "baseline": "big", "checks": ["punt"]}}
    async with running(gateway_config(upstream.base_url, routes=routes)) as live:
        yield live


@pytest.fixture
async def oai(server: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    url = server.base_url + "/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def claude(server: Running) -> AsyncIterator[anthropic.AsyncAnthropic]:
    url = server.base_url
    async with anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


async def test_openai_sdk_chat_with_headers(oai: openai.AsyncOpenAI) -> None:
    raw = await oai.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-request-id": "req-123"},
    )
    completion = raw.parse()
    headers = raw.headers
    own = headers["x-tierwise-request-id"]
    assert completion.choices[0].message.content == "Answer from cheap-model: hello"
    assert completion.model == "cheap-model" and completion.id == f"chatcmpl-{own}"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert headers["x-request-id"] == "req-123"
    assert headers["x-tierwise-route"] == "auto" and headers["x-tierwise-model"] == "mini"
    assert headers["x-tierwise-tier"] == "cheap" and headers["x-tierwise-attempts"] == "1"
    assert float(headers["x-tierwise-cost-usd"]) > 0


async def test_router_sends_complex_prompts_to_the_strong_tier(oai: openai.AsyncOpenAI) -> None:
    prompt = "Please analyze the tradeoffs between these two database designs in depth."
    raw = await oai.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}]
    )
    assert raw.headers["x-tierwise-tier"] == "strong"
    assert raw.parse().model == "strong-model"


async def test_openai_sdk_stream_with_usage(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "stream this please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "Answer from cheap-model: stream this please"
    assert usage is not None and usage.completion_tokens > 0


async def test_openai_sdk_tool_calls_plain_and_streamed(oai: openai.AsyncOpenAI) -> None:
    messages: Any = [{"role": "user", "content": "find it [[tool=lookup]]"}]
    completion = await oai.chat.completions.create(model="mini", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup" and completion.choices[0].finish_reason == "tool_calls"
    stream = await oai.chat.completions.create(
        model="mini",
        messages=messages,
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    )
    names, arguments = [], ""
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            if delta.function and delta.function.name:
                names.append(delta.function.name)
            arguments += (delta.function.arguments or "") if delta.function else ""
    assert names == ["lookup"] and arguments.startswith("{")


async def test_openai_sdk_typed_errors(oai: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        await oai.chat.completions.create(model="auto", messages=[])
    assert bad.value.body["param"] == "messages"  # type: ignore[index]
    upstream.set_failure_rate(None, 1.0, fault="500")
    with pytest.raises(openai.APIStatusError) as failed:
        await oai.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 502
    attempts = failed.value.body["attempts"]  # type: ignore[index]
    assert [a["reason"] for a in attempts if a["called"]] == ["upstream_5xx"] * 4


async def test_anthropic_sdk_messages_and_stream(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model="auto",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Answer from cheap-model: hello there"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    async with claude.messages.stream(
        model="auto", max_tokens=100, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Answer from cheap-model: stream me"
    assert final.usage.output_tokens > 0


async def test_anthropic_sdk_tools_and_errors(claude: anthropic.AsyncAnthropic) -> None:
    tools: Any = [
        {
            "name": "lookup",
            "description": "find",
            "input_schema": {"type": "object", "properties": {}},
        }
    ]
    message = await claude.messages.create(
        model="claude",
        max_tokens=50,
        tools=tools,
        messages=[{"role": "user", "content": "find it [[tool=lookup]]"}],
    )
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["tool_use"]
    async with claude.messages.stream(
        model="claude",
        max_tokens=50,
        tools=tools,
        messages=[{"role": "user", "content": "find it [[tool=lookup]]"}],
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].name == "lookup"
    with pytest.raises(anthropic.NotFoundError) as missing:
        await claude.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        await claude.messages.create(model="auto", max_tokens=5, messages=[])


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be an object"),
        (b'{"model": "auto"}', 400, "messages"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (b'{"model": "auto", "messages": [{"role": "robot", "content": "x"}]}', 400, "role"),
        (b'{"model": "auto", "messages": [{"role": "user", "content": 5}]}', 400, "content"),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": "hot"}',
            400,
            "temperature",
        ),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            400,
            "max_tokens",
        ),
        (b'{"model": "ghost", "messages": [{"role": "user", "content": "x"}]}', 404, "ghost"),
    ],
)
async def test_bad_input_gets_openai_errors(
    server: Running, body: bytes, status: int, needle: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.base_url + "/v1/chat/completions",
            data=body,
            headers={"content-type": "application/json"},
        ) as response,
    ):
        payload = await response.json()
    assert response.status == status
    assert needle in payload["error"]["message"] and payload["error"]["type"]
    assert "Traceback" not in str(payload)


async def test_oversized_body_and_anthropic_shapes(server: Running) -> None:
    huge = (
        b'{"model": "auto", "messages": [{"role": "user", "content": "' + b"x" * (5 << 20) + b'"}]}'
    )
    async with aiohttp.ClientSession() as session:
        url = server.base_url + "/v1/chat/completions"
        async with session.post(url, data=io.BytesIO(huge)) as response:
            assert response.status == 413
            assert "larger than" in (await response.json())["error"]["message"]
        async with session.post(server.base_url + "/v1/messages", data=b"{oops") as response:
            payload = await response.json()
            assert response.status == 400 and payload["type"] == "error"
            assert payload["error"]["type"] == "invalid_request_error"
        body = {"model": "auto", "messages": [{"role": "user", "content": "x"}]}
        async with session.post(server.base_url + "/v1/messages", json=body) as response:
            payload = await response.json()
            assert response.status == 400 and "max_tokens" in payload["error"]["message"]


async def test_models_health_and_ready(server: Running) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.base_url + "/v1/models") as response:
            ids = [m["id"] for m in (await response.json())["data"]]
        async with session.get(server.base_url + "/health") as response:
            assert response.status == 200
        async with session.get(server.base_url + "/ready") as response:
            assert response.status in (200, 503)
    assert {"auto", "cheap", "strong", "mini", "big", "claude"} <= set(ids)


async def test_stream_failure_after_commit_is_a_wire_error(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    upstream.add_fault("cut", model="cheap-model", after=2)
    stream = await oai.chat.completions.create(
        model="cheap",
        stream=True,
        messages=[{"role": "user", "content": "a question that streams in several chunks"}],
    )
    seen = ""
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            seen += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert seen.startswith("Answer from") and "stream failed" in str(caught.value)
