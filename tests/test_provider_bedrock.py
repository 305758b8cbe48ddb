"""Bedrock's Converse API through a real gateway and a fake that speaks it:
SigV4-signed requests (the test recomputes each signature with botocore from
what the fake received), content blocks, tools and images, ConverseStream's
binary event stream, errors in the taxonomy, and usage priced exactly."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.helpers import fault_falls_back, provider_data, trail
from tierwise import AllAttemptsFailedError, ChatRequest, Gateway, Message, parse_config
from tierwise.errors import ConfigError
from tierwise.pricing import lookup_model
from tierwise.testing import FakeUpstream, ReceivedRequest
from tierwise.testing._fake_bedrock import GUARDRAIL_TEXT
from tierwise.types import ToolCall

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ACCESS, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-tok"
ENV = {"AWS_KEY": ACCESS, "AWS_SECRET": SECRET, "AWS_TOKEN": TOKEN}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": CITY}}


def config(base: str, **bedrock: Any) -> dict[str, Any]:
    deployment = {
        "provider": "bedrock",
        "model": MODEL,
        "api_base": base,
        "aws_region": "eu-west-1",
        "aws_access_key_id": "env:AWS_KEY",
        "aws_secret_access_key": "env:AWS_SECRET",
        "price": {"input": "0.25", "output": "1.25", "cached_input": "0.03"},
        "timeout": {"connect_s": 2, "total_s": 5},
        **bedrock,
    }
    return provider_data(base, "br", deployment)


@pytest.fixture
async def gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    async with Gateway(
        parse_config(config(upstream.base_url)), rng=random.Random(1), environ=ENV
    ) as made:
        yield made


def ask(*messages: Message, **options: Any) -> ChatRequest:
    return ChatRequest(list(messages), model="auto", **options)


def user(text: str) -> Message:
    return Message("user", text)


def signature_verifies(
    sent: ReceivedRequest, base_url: str, secret: str = SECRET, body: bytes | None = None
) -> bool:
    """Recompute the SigV4 signature of what the fake received (its raw path and
    body, the headers the signature names) and compare it with the one sent."""
    scheme, _, fields_text = sent.headers["authorization"].partition(" ")
    assert scheme == "AWS4-HMAC-SHA256"
    fields = dict(f.strip().split("=", 1) for f in fields_text.split(","))
    access, _date, region, service, _end = fields["Credential"].split("/")
    names = fields["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(names)
    data = sent.raw_body if body is None else body
    request = AWSRequest(
        method="POST",
        url=base_url + sent.raw_path,
        data=data,
        headers={n: sent.headers[n] for n in names},
    )
    request.context["timestamp"] = sent.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(access, secret), service, region)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    return bool(signer.signature(string_to_sign, request) == fields["Signature"])


async def test_a_round_trip_is_signed_and_priced(upstream: FakeUpstream, gateway: Gateway) -> None:
    upstream.script(MODEL, "hello", "hi there", prompt_tokens=1000, completion_tokens=500)
    request = ask(Message("system", "be brief"), user("hello"), max_tokens=64, temperature=0.5)
    result = await gateway.chat(request)
    assert result.response.text() == "hi there"
    assert result.response.choices[0].finish_reason == "stop"
    sent = upstream.requests[-1]
    assert sent.path == f"/model/{MODEL}/converse"
    assert sent.raw_path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.5},
    }
    assert f"Credential={ACCESS}/" in sent.headers["authorization"]
    assert "/eu-west-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert signature_verifies(sent, upstream.base_url)
    assert not signature_verifies(sent, upstream.base_url, secret="wrong")
    assert not signature_verifies(sent, upstream.base_url, body=sent.raw_body + b" ")
    usage = result.record.attempts[0].usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (1000, 500)
    assert result.record.cost.attempts_usd == Decimal("0.000875")


async def test_a_session_token_is_sent_and_signed(upstream: FakeUpstream) -> None:
    data = config(upstream.base_url, aws_session_token="env:AWS_TOKEN")
    async with Gateway(parse_config(data), environ=ENV) as gateway:
        await gateway.chat(ask(user("hi")))
    sent = upstream.requests[-1]
    assert sent.headers["x-amz-security-token"] == TOKEN
    assert "x-amz-security-token" in sent.headers["authorization"]
    assert signature_verifies(sent, upstream.base_url)


async def test_a_stream_round_trip_reads_the_event_stream(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    prompt = "stream it [[cached=100]]"
    upstream.script(
        MODEL, prompt, "one two three four five", prompt_tokens=300, completion_tokens=10
    )
    stream = await gateway.stream(ask(user(prompt)))
    deltas = [d async for d in stream]
    assert "".join(d.text for d in deltas) == "one two three four five"
    assert len([d for d in deltas if d.text]) == 3
    sent = upstream.requests[-1]
    assert sent.path == f"/model/{MODEL}/converse-stream" and sent.stream
    assert signature_verifies(sent, upstream.base_url)
    usage = stream.record.attempts[0].usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (300, 10, 100)
    # 200 at 0.25, 100 cached at 0.03, 10 out at 1.25 (per million)
    assert stream.record.cost.attempts_usd == Decimal("0.0000655")


async def test_tools_round_trip_as_tool_use_and_tool_result_blocks(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    result = await gateway.chat(ask(user("weather?"), tools=[WEATHER], tool_choice="required"))
    body = upstream.requests[-1].body
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "weather",
                    "inputSchema": {"json": CITY},
                }
            }
        ],
        "toolChoice": {"any": {}},
    }
    [call] = result.response.tool_calls()
    assert call.name == "weather" and call.arguments == '{"x":1}'
    assert result.response.choices[0].finish_reason == "tool_calls"
    said = Message("assistant", None, tool_calls=[ToolCall(call.id, "weather", '{"city":"Oslo"}')])
    answered = Message("tool", '{"temp": 21}', tool_call_id=call.id)
    follow = await gateway.chat(ask(user("weather?"), said, answered, tools=[WEATHER]))
    messages = upstream.requests[-1].body["messages"]
    assert messages[1]["content"] == [
        {"toolUse": {"toolUseId": call.id, "name": "weather", "input": {"city": "Oslo"}}}
    ]
    result_block = {"toolUseId": call.id, "content": [{"json": {"temp": 21}}], "status": "success"}
    assert messages[2] == {"role": "user", "content": [{"toolResult": result_block}]}
    assert follow.response.text().startswith("Answer from " + MODEL)

    stream = await gateway.stream(ask(user("weather?"), tools=[WEATHER], tool_choice="required"))
    deltas = [d async for d in stream]
    pieces = [c for d in deltas for c in d.tool_calls or ()]
    assert pieces[0].name == "weather" and "".join(c.arguments for c in pieces) == '{"x":1}'


async def test_images_go_as_bytes_and_urls_are_refused(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
    await gateway.chat(ask(Message("user", [image, {"type": "text", "text": "what?"}])))
    assert upstream.requests[-1].body["messages"][0]["content"] == [
        {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
        {"text": "what?"},
    ]
    linked = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    calls = upstream.count()
    with pytest.raises(AllAttemptsFailedError) as caught:
        await gateway.chat(ask(Message("user", [linked])))
    assert caught.value.status == 400 and upstream.count() == calls


async def test_throttling_falls_back(upstream: FakeUpstream, gateway: Gateway) -> None:
    upstream.add_fault("429", model=MODEL)
    result = await gateway.chat(ask(user("hello")))
    assert trail(result.record) == [("br", "rate_limited"), ("backup", None)]


@pytest.mark.parametrize("fault", ["500", "503"])
async def test_server_errors_retry_then_fall_back(
    upstream: FakeUpstream, gateway: Gateway, fault: str
) -> None:
    upstream.add_fault(fault, model=MODEL, times=2)
    result = await gateway.chat(ask(user("hello")))
    assert trail(result.record) == [
        ("br", "upstream_5xx"),
        ("br", "upstream_5xx"),
        ("backup", None),
    ]


@pytest.mark.parametrize(
    ("fault", "trigger"),
    [
        ("context_length", "context_window"),
        ("filtered", "content_policy"),
        ("auth", "auth"),
    ],
)
async def test_errors_map_onto_the_taxonomy_for_answers_and_streams(
    upstream: FakeUpstream, gateway: Gateway, fault: str, trigger: str
) -> None:
    await fault_falls_back(upstream, gateway, fault, trigger, "br")


async def test_a_guardrail_intervention_is_the_answer(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    """The deployment's own guardrail replaced the answer with its blocked message:
    falling back elsewhere would get around it, so it is returned as it is."""
    upstream.add_fault("content_policy", model=MODEL, times=2)
    result = await gateway.chat(ask(user("hello")))
    assert trail(result.record) == [("br", None)]
    assert result.response.text() == GUARDRAIL_TEXT
    assert result.response.choices[0].finish_reason == "content_filter"
    stream = await gateway.stream(ask(user("hello")))
    deltas = [d async for d in stream]
    assert "".join(d.text for d in deltas) == GUARDRAIL_TEXT
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["content_filter"]


@pytest.mark.parametrize(
    ("fault", "trigger"), [("cut", "connection"), ("invalid_json", "invalid_response")]
)
async def test_broken_event_streams_fall_back_before_commit(
    upstream: FakeUpstream, gateway: Gateway, fault: str, trigger: str
) -> None:
    upstream.add_fault(fault, model=MODEL, times=2, after=0)
    stream = await gateway.stream(ask(user("a longer question to answer")))
    text = "".join([d.text async for d in stream])
    assert trail(stream.record) == [("br", trigger), ("br", trigger), ("backup", None)]
    assert text.startswith("Answer from backup-model")


def test_bedrock_model_ids_find_their_prices() -> None:
    info = lookup_model(MODEL)
    assert info is not None and info.price.input_per_mtok == Decimal("0.25")
    nova = lookup_model("amazon.nova-micro-v1:0")
    assert nova is not None and nova.price.output_per_mtok == Decimal("0.14")


def test_a_bedrock_deployment_needs_region_and_keys() -> None:
    data = config("http://x")
    del data["deployments"]["br"]["aws_region"]
    with pytest.raises(ConfigError, match="bedrock deployment needs aws_region"):
        parse_config(data)


async def test_the_openai_sdk_streams_from_bedrock_through_the_server(
    upstream: FakeUpstream,
) -> None:
    import openai

    from tierwise.server.run import running

    keys = {"aws_access_key_id": ACCESS, "aws_secret_access_key": SECRET}
    async with (
        running(parse_config(config(upstream.base_url, **keys))) as live,
        openai.AsyncOpenAI(base_url=live.base_url + "/v1", api_key="x", max_retries=0) as client,
    ):
        chunks = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi there"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert text == f"Answer from {MODEL}: hi there"
    assert signature_verifies(upstream.requests[-1], upstream.base_url)
