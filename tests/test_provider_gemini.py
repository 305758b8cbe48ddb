"""Gemini through a real gateway and a fake that speaks `generateContent` and
`streamGenerateContent?alt=sse`: contents and parts, images and tools, finish
reasons, errors in the taxonomy (a 429's delay read from `RetryInfo`), and
`usageMetadata` priced exactly."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.helpers import fault_falls_back, provider_data, trail
from tierwise import AllAttemptsFailedError, ChatRequest, Gateway, Message, parse_config
from tierwise.errors import ContentPolicyError
from tierwise.testing import FakeUpstream
from tierwise.types import ToolCall
from tierwise.wire.gemini import outbound

KEY = "gemini-key-9"
MODEL = "gemini-2.0-flash"
IMAGE = "data:image/png;base64,iVBORw0KGgo="
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "description": "The weather in a city", "parameters": CITY},
}


def config(base: str, **gemini: Any) -> dict[str, Any]:
    deployment = {
        "provider": "gemini",
        "model": MODEL,
        "api_base": base,
        "api_key": "env:GEMINI_KEY",
        "price": {"input": "0.10", "output": "0.40", "cached_input": "0.025"},
        "timeout": {"connect_s": 2, "total_s": 5},
        **gemini,
    }
    return provider_data(base, "gem", deployment)


@pytest.fixture
async def gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    data = parse_config(config(upstream.base_url))
    async with Gateway(data, rng=random.Random(1), environ={"GEMINI_KEY": KEY}) as made:
        yield made


def ask(*messages: Message, **options: Any) -> ChatRequest:
    return ChatRequest(list(messages), model="auto", **options)


def user(text: str) -> Message:
    return Message("user", text)


async def test_a_round_trip_sends_contents_and_prices_usage_metadata(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    prompt = "hello [[cached=400]]"
    upstream.script(MODEL, prompt, "hi there", prompt_tokens=1000, completion_tokens=500)
    request = ask(Message("system", "be brief"), user(prompt), max_tokens=64, temperature=0.2)
    result = await gateway.chat(request)
    assert result.response.text() == "hi there"
    assert result.response.choices[0].finish_reason == "stop"
    sent = upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent" and sent.query == {}
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2},
    }
    usage = result.record.attempts[0].usage
    assert usage is not None and not usage.estimated
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (1000, 500, 400)
    assert result.record.cost.attempts_usd == Decimal("0.00027")


async def test_a_stream_round_trip_reads_sse_and_prices_the_last_usage(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    upstream.script(
        MODEL, "stream it", "one two three four five", prompt_tokens=300, completion_tokens=10
    )
    stream = await gateway.stream(ask(user("stream it")))
    deltas = [d async for d in stream]
    assert "".join(d.text for d in deltas) == "one two three four five"
    assert len([d for d in deltas if d.text]) == 3
    sent = upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert sent.query == {"alt": "sse"} and sent.stream
    usage = stream.record.attempts[0].usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (300, 10)
    assert stream.record.cost.attempts_usd == Decimal("0.000034")


async def test_images_and_tools_are_encoded_as_parts_and_declarations(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    image = {"type": "image_url", "image_url": {"url": IMAGE}}
    question = Message("user", [image, {"type": "text", "text": "weather where this is?"}])
    forced = {"type": "function", "function": {"name": "weather"}}
    result = await gateway.chat(ask(question, tools=[WEATHER], tool_choice=forced))
    body = upstream.requests[-1].body
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"text": "weather where this is?"},
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": "The weather in a city",
                    "parametersJsonSchema": CITY,
                }
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}
    }
    [call] = result.response.tool_calls()
    assert (call.name, call.arguments) == ("weather", '{"x":1}')
    assert result.response.choices[0].finish_reason == "tool_calls"

    answered = Message("tool", '{"temp": 21}', tool_call_id=call.id)
    said = Message("assistant", None, tool_calls=[ToolCall(call.id, "weather", '{"city":"Oslo"}')])
    follow = await gateway.chat(ask(question, said, answered, tools=[WEATHER]))
    contents = upstream.requests[-1].body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "weather", "response": {"temp": 21}}}],
    }
    assert follow.response.text().startswith("Answer from gemini-2.0-flash")


async def test_a_streamed_tool_call_assembles(upstream: FakeUpstream, gateway: Gateway) -> None:
    stream = await gateway.stream(ask(user("go"), tools=[WEATHER], tool_choice="required"))
    deltas = [d async for d in stream]
    calls = [c for d in deltas for c in d.tool_calls or ()]
    assert [(c.name, c.arguments) for c in calls] == [("weather", '{"x":1}')]
    assert upstream.requests[-1].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["tool_calls"]


async def test_a_rate_limit_falls_back_with_the_retry_info_delay(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    upstream.add_fault("429", model=MODEL, retry_after=1.5)
    result = await gateway.chat(ask(user("hello")))
    assert trail(result.record) == [("gem", "rate_limited"), ("backup", None)]
    assert result.record.attempts[0].retry_after_s == 1.5
    assert result.response.text().startswith("Answer from backup-model")


@pytest.mark.parametrize("fault", ["500", "503"])
async def test_server_errors_retry_then_fall_back(
    upstream: FakeUpstream, gateway: Gateway, fault: str
) -> None:
    upstream.add_fault(fault, model=MODEL, times=2)
    result = await gateway.chat(ask(user("hello")))
    assert trail(result.record) == [
        ("gem", "upstream_5xx"),
        ("gem", "upstream_5xx"),
        ("backup", None),
    ]


@pytest.mark.parametrize(
    ("fault", "trigger"),
    [
        ("context_length", "context_window"),
        ("content_policy", "content_policy"),
        ("filtered", "content_policy"),
        ("auth", "auth"),
    ],
)
async def test_errors_map_onto_the_taxonomy_for_answers_and_streams(
    upstream: FakeUpstream, gateway: Gateway, fault: str, trigger: str
) -> None:
    await fault_falls_back(upstream, gateway, fault, trigger, "gem")


@pytest.mark.parametrize(
    ("fault", "trigger"), [("cut", "connection"), ("invalid_json", "invalid_response")]
)
async def test_broken_streams_fall_back_before_commit(
    upstream: FakeUpstream, gateway: Gateway, fault: str, trigger: str
) -> None:
    upstream.add_fault(fault, model=MODEL, times=2, after=0)
    stream = await gateway.stream(ask(user("a longer question to answer")))
    text = "".join([d.text async for d in stream])
    assert trail(stream.record)[-1] == ("backup", None)
    assert (("gem", trigger)) in trail(stream.record)
    assert text.startswith("Answer from backup-model")


async def test_a_missing_key_is_an_auth_error(upstream: FakeUpstream) -> None:
    async with Gateway(parse_config(config(upstream.base_url, api_key=None))) as gateway:
        result = await gateway.chat(ask(user("hello")))
    assert trail(result.record) == [("gem", "auth"), ("backup", None)]


async def test_a_bad_request_fails_at_once(upstream: FakeUpstream, gateway: Gateway) -> None:
    upstream.add_fault("bad_request", model=MODEL)
    with pytest.raises(AllAttemptsFailedError) as caught:
        await gateway.chat(ask(user("hello")))
    assert caught.value.status == 400
    assert upstream.count("backup-model") == 0


@pytest.mark.parametrize(
    ("reason", "neutral"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("OTHER", "stop")],
)
def test_finish_reasons_map_to_neutral_ones(reason: str, neutral: str) -> None:
    candidate = {
        "content": {"role": "model", "parts": [{"text": "partial"}]},
        "finishReason": reason,
    }
    answer = outbound.decode_response({"candidates": [candidate]}, MODEL)
    assert answer.choices[0].finish_reason == neutral and answer.text() == "partial"


def test_a_wholly_withheld_answer_is_a_content_policy_error() -> None:
    with pytest.raises(ContentPolicyError):
        outbound.decode_response({"candidates": [{"finishReason": "SAFETY"}]}, MODEL)


async def test_sdk_clients_are_served_from_gemini_through_the_server(
    upstream: FakeUpstream,
) -> None:
    """The OpenAI SDK streams and the Anthropic SDK asks, both answered by Gemini."""
    import anthropic
    import openai

    from tierwise.server.run import running

    data = config(upstream.base_url, api_key=KEY)
    async with running(parse_config(data)) as live:
        async with openai.AsyncOpenAI(
            base_url=live.base_url + "/v1", api_key="x", max_retries=0
        ) as oai:
            chunks = await oai.chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": "hi from openai"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            pieces = [c async for c in chunks]
        async with anthropic.AsyncAnthropic(
            base_url=live.base_url, api_key="x", max_retries=0
        ) as claude:
            message = await claude.messages.create(
                model="auto",
                max_tokens=50,
                messages=[{"role": "user", "content": "hi from claude"}],
            )
    text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    assert text == f"Answer from {MODEL}: hi from openai"
    assert pieces[-1].usage is not None and pieces[-1].usage.completion_tokens > 0
    block = message.content[0]
    assert block.type == "text" and block.text == f"Answer from {MODEL}: hi from claude"
    assert [r.path for r in upstream.requests] == [
        f"/v1beta/models/{MODEL}:streamGenerateContent",
        f"/v1beta/models/{MODEL}:generateContent",
    ]
