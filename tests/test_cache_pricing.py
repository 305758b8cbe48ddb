"""Provider prompt caching in the bill: cache reads and cache writes reported by
an OpenAI-format and an Anthropic-format upstream, priced apart, through a real
gateway (library and HTTP, spoken to by the official SDKs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

from tests.helpers import gateway_config
from tierwise.config import parse_config
from tierwise.gateway import Gateway
from tierwise.pricing import Price, price_table
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream
from tierwise.types import ChatRequest, Message, Usage

PRICE = {"input": "3", "output": "15", "cached_input": "0.30", "cache_write": "3.75"}
READS_AND_WRITES = "summarise the long shared context [[cached=600 cache_write=300]]"
READS_ONLY = "summarise the long shared context [[cached=600]]"
# 1000 prompt tokens: 100 uncached at $3, 600 read at $0.30, 300 written at $3.75,
# and 50 output tokens at $15, per million.
BOTH_USD = Decimal("0.002355")
# 400 uncached at $3, 600 read at $0.30, 50 output at $15, per million.
READS_USD = Decimal("0.00213")


def deployments(upstream: FakeUpstream, **price: Any) -> dict[str, Any]:
    chosen = price or {"price": PRICE}
    return {
        "oa": {"model": "oa-model", "api_base": upstream.base_url + "/v1", **chosen},
        "an": {
            "provider": "anthropic",
            "model": "an-model",
            "api_base": upstream.base_url,
            "api_key": "sk-ant-test",
            **chosen,
        },
    }


def config_data(upstream: FakeUpstream, **price: Any) -> dict[str, Any]:
    return {
        "deployments": deployments(upstream, **price),
        "tiers": {"cheap": ["oa"], "strong": ["an"]},
        "routes": {"auto": {"router": "fixed", "baseline": "an"}},
    }


def scripted(upstream: FakeUpstream, *models: str) -> None:
    for model in models:
        for prompt in (READS_AND_WRITES, READS_ONLY):
            upstream.script(model, prompt, "ok", prompt_tokens=1000, completion_tokens=50)


def ask(model: str, prompt: str) -> ChatRequest:
    return ChatRequest([Message("user", prompt)], model=model)


def test_reads_and_writes_are_subsets_of_input_each_at_its_price() -> None:
    price = Price(Decimal(3), Decimal(15), Decimal("0.30"), Decimal("3.75"))
    usage = Usage(1000, 50, 600, cache_write_tokens=300)
    assert price.cost_usd(usage) == BOTH_USD
    # More cache tokens reported than input tokens: never more than the input.
    assert price.cost_usd(Usage(100, 0, 60, cache_write_tokens=500)) == Decimal("0.000168")
    # No cache prices: reads and writes cost the input price.
    plain = Price(Decimal(3), Decimal(15))
    assert plain.cost_usd(usage) == plain.cost_usd(Usage(1000, 50)) == Decimal("0.00375")


def test_the_table_prices_anthropic_cache_writes_at_the_premium() -> None:
    table = price_table()
    claude = [info for name, info in table.items() if name.startswith("claude")]
    assert len(claude) >= 8
    # Claude 3 Haiku's list prices are rounded: $0.30 writes, $0.03 reads on $0.25.
    haiku_3 = table["claude-3-haiku"].price
    assert (haiku_3.cache_write_per_mtok, haiku_3.cached_input_per_mtok) == (
        Decimal("0.30"),
        Decimal("0.03"),
    )
    for info in claude:
        if info.name == "claude-3-haiku":
            continue
        assert info.price.cache_write_per_mtok == info.price.input_per_mtok * Decimal("1.25")
        assert info.price.cached_input_per_mtok is not None
        assert info.price.cached_input_per_mtok <= info.price.input_per_mtok * Decimal("0.12")
    assert table["claude-sonnet-4-5"].price.cache_write_per_mtok == Decimal("3.75")
    assert table["gpt-4o"].price.cached_input_per_mtok == Decimal("1.25")
    no_premium = [n for n in table if n.startswith(("gpt", "o3", "o4", "gemini"))]
    assert all(table[n].price.cache_write_per_mtok is None for n in no_premium)


def test_a_deployment_overrides_the_cache_prices() -> None:
    data = {
        "deployments": {
            "c": {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "api_key": "k",
                "price": {"input": "3", "output": "15", "cache_write": "6"},
            }
        }
    }
    price = parse_config(data).deployments["c"].resolved_price()
    assert price.cache_write_per_mtok == Decimal(6) and price.cached_input_per_mtok is None


@pytest.mark.parametrize("model", ["an", "oa"])
async def test_cache_reads_and_writes_are_billed_exactly(
    upstream: FakeUpstream, model: str
) -> None:
    scripted(upstream, "an-model", "oa-model")
    async with Gateway(parse_config(config_data(upstream))) as gateway:
        both = await gateway.chat(ask(model, READS_AND_WRITES))
        reads = await gateway.chat(ask(model, READS_ONLY))
    assert both.response.usage == Usage(1000, 50, 600, cache_write_tokens=300)
    assert both.record.cost.attempts_usd == BOTH_USD
    assert both.record.cost.baseline_usd == BOTH_USD
    assert reads.response.usage == Usage(1000, 50, 600)
    assert reads.record.cost.attempts_usd == READS_USD


@pytest.mark.parametrize("model", ["an", "oa"])
async def test_streamed_cache_usage_is_billed_exactly(upstream: FakeUpstream, model: str) -> None:
    scripted(upstream, "an-model", "oa-model")
    async with Gateway(parse_config(config_data(upstream))) as gateway:
        async with await gateway.stream(ask(model, READS_AND_WRITES)) as stream:
            text = "".join([delta.text async for delta in stream])
        record = stream.record
    assert text == "ok"
    assert record.attempts[-1].usage == Usage(1000, 50, 600, cache_write_tokens=300)
    assert record.cost.attempts_usd == BOTH_USD


async def test_the_price_table_bills_cache_writes_without_a_configured_price(
    upstream: FakeUpstream,
) -> None:
    data = config_data(upstream)
    data["deployments"]["an"] = {**data["deployments"]["an"], "model": "claude-haiku-4-5"}
    del data["deployments"]["an"]["price"]
    scripted(upstream, "claude-haiku-4-5")
    async with Gateway(parse_config(data)) as gateway:
        result = await gateway.chat(ask("an", READS_AND_WRITES))
    # 100 x $1 + 600 x $0.10 + 300 x $1.25 + 50 x $5, per million.
    assert result.record.cost.attempts_usd == Decimal("0.000785")


@pytest.fixture
async def server(upstream: FakeUpstream) -> AsyncIterator[Running]:
    scripted(upstream, "an-model", "oa-model")
    async with running(gateway_config(upstream.base_url, **config_data(upstream))) as live:
        yield live


async def test_anthropic_clients_read_cache_reads_and_writes(server: Running) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key="unused", max_retries=0
    ) as client:
        for model in ("an", "oa"):
            raw = await client.messages.with_raw_response.create(
                model=model, max_tokens=64, messages=[{"role": "user", "content": READS_AND_WRITES}]
            )
            usage = (await raw.parse()).usage
            assert (usage.input_tokens, usage.output_tokens) == (100, 50)
            assert usage.cache_read_input_tokens == 600
            assert usage.cache_creation_input_tokens == 300
            assert Decimal(raw.headers["x-tierwise-cost-usd"]) == BOTH_USD
        async with client.messages.stream(
            model="an", max_tokens=64, messages=[{"role": "user", "content": READS_AND_WRITES}]
        ) as stream:
            final = await stream.get_final_message()
        assert final.usage.cache_read_input_tokens == 600
        assert final.usage.cache_creation_input_tokens == 300
        assert final.usage.input_tokens == 100


async def test_openai_clients_read_cached_tokens(server: Running) -> None:
    url = server.base_url + "/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
        for model in ("an", "oa"):
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": READS_AND_WRITES}]
            )
            usage = raw.parse().usage
            assert usage is not None and usage.prompt_tokens == 1000
            details = usage.prompt_tokens_details
            assert details is not None and details.cached_tokens == 600
            assert details.cache_write_tokens == 300
            assert Decimal(raw.headers["x-tierwise-cost-usd"]) == BOTH_USD
        raw = await client.chat.completions.with_raw_response.create(
            model="oa", messages=[{"role": "user", "content": READS_ONLY}]
        )
        usage = raw.parse().usage
        details = usage.prompt_tokens_details if usage is not None else None
        assert details is not None and details.cached_tokens == 600
        assert details.cache_write_tokens is None
        assert Decimal(raw.headers["x-tierwise-cost-usd"]) == READS_USD
