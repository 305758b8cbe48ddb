"""Trigger policies from config, load sharing, the deadline, usage estimation and
the synchronous wrapper."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.helpers import GatewayFactory, ManualClock, gateway_config
from tierwise import AllAttemptsFailedError, ChatRequest, Gateway, Message, SyncGateway
from tierwise.testing import FakeUpstream
from tierwise.tokens import count_message_tokens, count_text_tokens


def ask(text: str, **options: object) -> ChatRequest:
    return ChatRequest([Message("user", text)], model="auto", **options)  # type: ignore[arg-type]


async def test_a_trigger_can_be_made_to_cool_the_deployment(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    triggers = {"content_policy": {"action": "next", "cooldown": "immediate", "cooldown_s": 30}}
    gateway = make_gateway(fallback={"triggers": triggers})
    upstream.add_fault("content_policy", model="cheap-model")
    await gateway.chat(ask("hello"))
    second = await gateway.chat(ask("hello"))
    assert [(a.deployment, a.trigger) for a in second.record.attempts] == [
        ("mini", "circuit_open"),
        ("big", None),
    ]


async def test_a_trigger_can_be_made_to_fail_fast(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(fallback={"triggers": {"upstream_5xx": {"action": "fail"}}})
    upstream.add_fault("503", model="cheap-model")
    with pytest.raises(AllAttemptsFailedError):
        await gateway.chat(ask("hello"))
    assert upstream.count() == 1


async def test_weighted_deployments_share_a_tier(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    base = upstream.base_url + "/v1"
    deployments = {
        "a": {"model": "model-a", "api_base": base, "weight": 3},
        "b": {"model": "model-b", "api_base": base, "weight": 1},
    }
    gateway = make_gateway(
        deployments=deployments, tiers={"only": ["a", "b"]}, routes={"auto": {"router": "fixed"}}
    )
    served = Counter()
    for i in range(400):
        result = await gateway.chat(ask(f"q{i}"))
        served[result.record.final_deployment] += 1
    assert 0.68 < served["a"] / 400 < 0.82


async def test_one_deadline_bounds_every_hop(upstream: FakeUpstream) -> None:
    """Every hop's own timeout is 30 s and the upstream hangs; the deadline of 0.3 s
    cuts each hop short. The gateway's clock moves 0.2 s per request the upstream
    receives, so the second hop starts with 0.1 s left and a third never starts."""
    base = upstream.base_url + "/v1"
    slow = {"connect_s": 30, "total_s": 30}
    deployments = {
        name: {"model": model, "api_base": base, "timeout": slow}
        for name, model in (("mini", "cheap-model"), ("big", "strong-model"), ("huge", "huge"))
    }
    fallback = {"deadline_s": 0.3, "attempt_timeout_s": None, "retries_per_deployment": 0}
    tiers = {"cheap": ["mini"], "strong": ["big"], "top": ["huge"]}
    config = gateway_config(
        upstream.base_url, deployments=deployments, tiers=tiers, fallback=fallback
    )
    upstream.set_failure_rate(None, 1.0, fault="hang")
    clock = ManualClock(lambda: 0.2 * len(upstream.requests))
    async with Gateway(config, clock=clock) as gateway, asyncio.timeout(10):
        with pytest.raises(AllAttemptsFailedError) as caught:
            await gateway.chat(ask("hello"))
    record = caught.value.record
    assert [(a.deployment, a.trigger) for a in record.calls] == [
        ("mini", "timeout"),
        ("big", "timeout"),
    ]
    assert record.error == "deadline of 0.3s passed"


async def test_missing_usage_is_counted_with_a_real_tokenizer(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway()
    result = await gateway.chat(ask("count me please [[usage=none]]"))
    usage = result.record.attempts[-1].usage
    assert usage is not None and usage.estimated
    request = ask("count me please [[usage=none]]")
    assert usage.input_tokens == count_message_tokens(request.messages)
    assert usage.output_tokens == count_text_tokens(result.response.text())
    expected = (usage.input_tokens * Decimal("0.15") + usage.output_tokens * Decimal("0.60")) / (
        10**6
    )
    assert result.record.cost.attempts_usd == expected


async def test_cached_input_tokens_are_priced_apart(upstream: FakeUpstream) -> None:
    base = upstream.base_url + "/v1"
    price = {"input": "0.15", "output": "0.60", "cached_input": "0.075"}
    deployments = {
        "mini": {"model": "cheap-model", "api_base": base, "price": price},
        "big": {"model": "strong-model", "api_base": base},
    }
    async with Gateway(gateway_config(upstream.base_url, deployments=deployments)) as gateway:
        result = await gateway.chat(ask("a prompt with a cached prefix here [[cached=4]]"))
    usage = result.response.usage
    assert usage is not None and usage.cached_input_tokens == 4
    expected = (
        (usage.input_tokens - 4) * Decimal("0.15")
        + 4 * Decimal("0.075")
        + usage.output_tokens * Decimal("0.60")
    ) / 10**6
    assert result.record.cost.attempts_usd == expected


@pytest.fixture
def upstream_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tierwise.testing.fake_upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_sync_gateway_chat_and_stream(upstream_process: str) -> None:
    with SyncGateway(gateway_config(upstream_process)) as gateway:
        result = gateway.chat(ask("hello sync"))
        assert result.response.text() == "Answer from cheap-model: hello sync"
        text = "".join(d.text for d in gateway.stream(ask("stream sync")))
        assert text == "Answer from cheap-model: stream sync"
        assert gateway.last_stream.record.status == "ok"


def test_request_ids_are_unique_across_forks() -> None:
    import os

    from tierwise.gateway import new_request_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    parent = new_request_id()
    assert len(child) == len(parent) == 32 and child[:16] != parent[:16]
    assert len({new_request_id() for _ in range(1000)}) == 1000
