"""Streams go through the same executor: triggers before the first token move
on; failures after it end the stream with an error, recorded."""

from __future__ import annotations

import pytest

from tests.helpers import GatewayFactory
from tierwise import AllAttemptsFailedError, ChatRequest, Message, StreamInterruptedError
from tierwise.testing import FakeUpstream


def ask(text: str, **options: object) -> ChatRequest:
    return ChatRequest([Message("user", text)], model="auto", **options)  # type: ignore[arg-type]


async def test_stream_yields_deltas_usage_and_a_priced_record(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway()
    stream = await gateway.stream(ask("tell me something"))
    deltas = [d async for d in stream]
    text = "".join(d.text for d in deltas)
    assert text == "Answer from cheap-model: tell me something"
    assert len([d for d in deltas if d.text]) > 1
    usage = stream.record.attempts[-1].usage
    assert usage is not None and not usage.estimated and usage.output_tokens > 0
    assert stream.record.status == "ok"
    assert stream.record.cost.attempts_usd > 0
    assert stream.record.cost.baseline_usd > stream.record.cost.total_usd


async def test_errors_before_the_first_token_move_to_the_next_attempt(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    for fault in ("500", "429", "context_length", "empty", "invalid_json"):
        upstream.add_fault(fault, model="cheap-model", times=2)
        stream = await gateway.stream(ask("hello"))
        text = "".join([d.text async for d in stream])
        assert text.startswith("Answer from strong-model"), fault
        assert stream.record.final_deployment == "big"
        upstream.clear()


async def test_cut_after_commit_ends_with_an_error_and_is_recorded(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    upstream.add_fault("cut", model="cheap-model", after=2)
    stream = await gateway.stream(ask("a long enough question to stream several chunks"))
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError) as caught:
        async for delta in stream:
            seen.append(delta.text)
    assert "".join(seen).startswith("Answer from")
    record = caught.value.record
    assert record.status == "error" and record.attempts[-1].trigger == "connection"
    assert record.attempts[-1].usage is not None and record.attempts[-1].usage.estimated
    assert record.cost.attempts_usd > 0
    assert upstream.count("strong-model") == 0


async def test_hold_back_lets_a_cut_stream_fall_back_before_commit(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(routes={"auto": {"router": "fixed", "stream_hold_back": 50}})
    upstream.add_fault("cut", model="cheap-model", after=2, times=2)
    stream = await gateway.stream(ask("a long enough question to stream several chunks"))
    text = "".join([d.text async for d in stream])
    assert text.startswith("Answer from strong-model")
    assert [a.trigger for a in stream.record.attempts] == ["connection", "connection", None]


async def test_hold_back_runs_checks_on_the_prefix(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    routes = {"auto": {"router": "fixed", "checks": ["punt"], "stream_hold_back": 4}}
    gateway = make_gateway(routes=routes)
    upstream.add_fault("punt", model="cheap-model")
    stream = await gateway.stream(ask("what is the airspeed of a swallow"))
    text = "".join([d.text async for d in stream])
    assert text.startswith("Answer from strong-model")
    assert [a.trigger for a in stream.record.attempts] == ["quality_check", None]


async def test_anthropic_stream_through_the_gateway(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(
        tiers={"cheap": ["claude"]}, routes={"auto": {"router": "fixed", "baseline": "claude"}}
    )
    stream = await gateway.stream(ask("hello claude"))
    deltas = [d async for d in stream]
    assert "".join(d.text for d in deltas) == "Answer from claude-model: hello claude"
    assert deltas[-1].usage is not None and deltas[-1].usage.output_tokens > 0
    assert any(d.finish_reason == "stop" for d in deltas)


async def test_tool_call_streams_assemble(make_gateway: GatewayFactory) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    for tier in ("mini", "claude"):
        gateway = make_gateway(
            tiers={"cheap": [tier]}, routes={"auto": {"router": "fixed", "baseline": tier}}
        )
        stream = await gateway.stream(ask("find it [[tool=lookup]]", tools=tools))
        _ = [d async for d in stream]
        calls = stream.response().tool_calls()
        assert [c.name for c in calls] == ["lookup"], tier
        assert calls[0].arguments.startswith("{") and calls[0].id


async def test_stream_with_nothing_left_raises_before_any_byte(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    upstream.set_failure_rate(None, 1.0, fault="auth")
    with pytest.raises(AllAttemptsFailedError) as caught:
        await gateway.stream(ask("hello"))
    assert [a.trigger for a in caught.value.record.calls] == ["auth", "auth"]


async def test_closing_early_records_a_cancelled_stream(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()
    records = []
    gateway.sinks.append(records.append)
    async with await gateway.stream(ask("a long enough question to stream chunks")) as stream:
        async for _delta in stream:
            break
    assert records and records[0].status == "cancelled"
