"""Azure OpenAI through a real gateway and a fake that speaks Azure's paths,
headers and errors: the deployment URL, `api-version`, the `api-key` header,
errors in the taxonomy, and usage priced exactly."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.helpers import provider_data, trail
from tierwise import ChatRequest, Gateway, Message, parse_config
from tierwise.errors import ConfigError
from tierwise.providers.azure import DEFAULT_API_VERSION
from tierwise.testing import FakeUpstream

KEY = "azure-key-123"
ENV = {"AZURE_OPENAI_KEY": KEY}


def config(base: str, **azure: Any) -> dict[str, Any]:
    """An Azure deployment first, an OpenAI one to fall back on."""
    deployment = {
        "provider": "azure",
        "model": "gpt-4o-mini",
        "azure_deployment": "prod-mini",
        "api_base": base,
        "api_key": "env:AZURE_OPENAI_KEY",
        "price": {"input": "0.15", "output": "0.60"},
        "timeout": {"connect_s": 2, "total_s": 5},
        **azure,
    }
    return provider_data(base, "az", deployment)


@pytest.fixture
async def gateway(upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    async with Gateway(
        parse_config(config(upstream.base_url)), rng=random.Random(1), environ=ENV
    ) as made:
        yield made


def ask(text: str) -> ChatRequest:
    return ChatRequest([Message("user", text)], model="auto")


async def test_a_round_trip_uses_the_deployment_url_version_and_key(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    upstream.script("prod-mini", "hello", "hi there", prompt_tokens=1000, completion_tokens=500)
    result = await gateway.chat(ask("hello"))
    assert result.response.text() == "hi there"
    assert trail(result.record) == [("az", None)]
    sent = upstream.requests[-1]
    assert sent.path == "/openai/deployments/prod-mini/chat/completions"
    assert sent.query == {"api-version": DEFAULT_API_VERSION}
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
    usage = result.record.attempts[0].usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (1000, 500)
    assert not usage.estimated
    assert result.record.cost.attempts_usd == Decimal("0.00045")


async def test_the_api_version_and_deployment_default_are_configurable(
    upstream: FakeUpstream,
) -> None:
    data = config(upstream.base_url + "/", api_version="2025-04-01-preview", azure_deployment=None)
    async with Gateway(parse_config(data), environ=ENV) as gateway:
        result = await gateway.chat(ask("hi"))
    assert result.response.text().startswith("Answer from gpt-4o-mini")
    assert upstream.requests[-1].path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert upstream.requests[-1].query["api-version"] == "2025-04-01-preview"


async def test_a_stream_round_trip_is_priced_from_its_usage(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    upstream.script(
        "prod-mini", "stream it", "one two three four", prompt_tokens=200, completion_tokens=8
    )
    stream = await gateway.stream(ask("stream it"))
    deltas = [d async for d in stream]
    assert "".join(d.text for d in deltas) == "one two three four"
    assert len([d for d in deltas if d.text]) == 2
    assert upstream.requests[-1].stream and upstream.requests[-1].headers["api-key"] == KEY
    assert stream.record.cost.attempts_usd == Decimal("0.0000348")


async def test_a_rate_limit_falls_back_and_keeps_the_retry_delay(
    upstream: FakeUpstream, gateway: Gateway
) -> None:
    upstream.add_fault("429", model="prod-mini", retry_after=1.5)
    result = await gateway.chat(ask("hello"))
    assert trail(result.record) == [("az", "rate_limited"), ("backup", None)]
    assert result.record.attempts[0].retry_after_s == 1.5
    assert result.response.text().startswith("Answer from backup-model")


async def test_server_errors_retry_then_fall_back(upstream: FakeUpstream, gateway: Gateway) -> None:
    upstream.add_fault("500", model="prod-mini", times=2)
    result = await gateway.chat(ask("hello"))
    assert trail(result.record) == [
        ("az", "upstream_5xx"),
        ("az", "upstream_5xx"),
        ("backup", None),
    ]


@pytest.mark.parametrize(
    ("fault", "trigger"),
    [
        ("content_policy", "content_policy"),
        ("filtered", "content_policy"),
        ("context_length", "context_window"),
    ],
)
async def test_request_errors_map_onto_the_taxonomy(
    upstream: FakeUpstream, gateway: Gateway, fault: str, trigger: str
) -> None:
    upstream.add_fault(fault, model="prod-mini", times=2)
    result = await gateway.chat(ask("hello"))
    assert trail(result.record) == [("az", trigger), ("backup", None)]
    stream = await gateway.stream(ask("hello"))
    assert "".join([d.text async for d in stream]).startswith("Answer from backup-model")
    assert trail(stream.record) == [("az", trigger), ("backup", None)]


async def test_a_missing_key_is_an_auth_error(upstream: FakeUpstream) -> None:
    data = config(upstream.base_url, api_key=None)
    async with Gateway(parse_config(data)) as gateway:
        result = await gateway.chat(ask("hello"))
    assert trail(result.record) == [("az", "auth"), ("backup", None)]
    assert upstream.requests[0].model is None  # refused before the body was read as a call


def test_an_azure_deployment_needs_its_endpoint() -> None:
    data = config("http://x")
    del data["deployments"]["az"]["api_base"]
    with pytest.raises(ConfigError, match="azure deployment needs api_base"):
        parse_config(data)


async def test_the_openai_sdk_streams_from_azure_through_the_server(
    upstream: FakeUpstream,
) -> None:
    import openai

    from tierwise.server.run import running

    async with (
        running(parse_config(config(upstream.base_url, api_key=KEY))) as live,
        openai.AsyncOpenAI(base_url=live.base_url + "/v1", api_key="x", max_retries=0) as client,
    ):
        chunks = await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi there"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert text == "Answer from prod-mini: hi there"
    assert upstream.requests[-1].headers["api-key"] == KEY
