"""Every trigger reaches the next attempt (or, for a bad request, does not),
with the right cooldown scope, against a fake upstream over a real socket."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.helpers import GatewayFactory, trail, until
from tierwise import AllAttemptsFailedError, ChatRequest, Message
from tierwise.testing import FakeUpstream


def ask(text: str, **options: object) -> ChatRequest:
    return ChatRequest([Message("user", text)], model="auto", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("fault", ["500", "503", "reset"])
async def test_transient_errors_retry_then_fall_back(
    upstream: FakeUpstream, make_gateway: GatewayFactory, fault: str
) -> None:
    gateway = make_gateway()
    upstream.add_fault(fault, model="cheap-model", times=2)
    result = await gateway.chat(ask("hello there"))
    kind = "connection" if fault == "reset" else "upstream_5xx"
    assert trail(result.record) == [("mini", kind), ("mini", kind), ("big", None)]
    assert result.response.text().startswith("Answer from strong-model")
    assert upstream.count("cheap-model") == 2 and upstream.count("strong-model") == 1


async def test_rate_limit_cools_the_deployment_for_every_request(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    first = await gateway.chat(ask("hi [[fault=429 model=cheap-model retry_after=5]]"))
    assert trail(first.record) == [("mini", "rate_limited"), ("big", None)]
    assert first.record.attempts[0].retry_after_s == 5.0
    second = await gateway.chat(ask("hi again"))
    assert trail(second.record) == [("mini", "circuit_open"), ("big", None)]
    assert not second.record.attempts[0].called
    assert upstream.count("cheap-model") == 1


async def test_retry_after_is_honoured_when_nothing_else_is_left(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(tiers={"cheap": ["mini"]})
    upstream.add_fault("429", retry_after=0.3)
    result = await gateway.chat(ask("hi"), request_id="r1")
    assert [a.trigger for a in result.record.calls] == ["rate_limited", None]
    assert result.record.latency_ms >= 300


async def test_hang_past_timeout_moves_on_without_retry(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    deployments = _with_timeout(upstream, {"connect_s": 1, "total_s": 0.4})
    gateway = make_gateway(deployments=deployments)
    upstream.add_fault("hang", model="cheap-model")
    result = await gateway.chat(ask("hello"))
    assert trail(result.record) == [("mini", "timeout"), ("big", None)]
    assert 350 <= result.record.attempts[0].latency_ms < 2000


async def test_slow_first_token_is_a_trigger(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    timeouts = {"connect_s": 1, "total_s": 5, "first_token_s": 0.3}
    gateway = make_gateway(deployments=_with_timeout(upstream, timeouts))
    prompt = "hello [[fault=slow_first_token delay=1.5 model=cheap-model]]"
    result = await gateway.chat(ask(prompt))
    assert trail(result.record) == [("mini", "first_token_timeout"), ("big", None)]
    stream = await gateway.stream(ask(prompt))
    text = "".join([d.text async for d in stream])
    assert text.startswith("Answer from strong-model")
    assert trail(stream.record) == [("mini", "first_token_timeout"), ("big", None)]


@pytest.mark.parametrize(
    ("fault", "trigger"),
    [("context_length", "context_window"), ("content_policy", "content_policy")],
)
async def test_request_scoped_errors_move_on_without_cooldown(
    upstream: FakeUpstream, make_gateway: GatewayFactory, fault: str, trigger: str
) -> None:
    gateway = make_gateway()
    for _ in range(4):
        upstream.add_fault(fault, model="cheap-model")
        result = await gateway.chat(ask("hello"))
        assert trail(result.record) == [("mini", trigger), ("big", None)]
    assert upstream.count("cheap-model") == 4


async def test_context_window_precheck_skips_small_deployments(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    long_prompt = "word " * 9000
    result = await gateway.chat(ask(long_prompt, max_tokens=100))
    assert trail(result.record) == [("mini", "context_window"), ("big", None)]
    assert not result.record.attempts[0].called
    assert upstream.count("cheap-model") == 0


async def test_the_failure_message_counts_calls_apart_from_skips(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(fallback={"retries_per_deployment": 0})
    upstream.add_fault("500", model="strong-model")
    with pytest.raises(AllAttemptsFailedError) as caught:
        await gateway.chat(ask("word " * 9000, max_tokens=100))
    message = str(caught.value)
    assert message.startswith("all 1 call failed and 1 deployment skipped: mini: context_window")
    assert caught.value.status == 502


async def test_invalid_answers_are_retried_then_escalated(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    upstream.add_fault("invalid_json", model="cheap-model", times=2)
    result = await gateway.chat(ask("hello"))
    assert trail(result.record) == [
        ("mini", "invalid_response"),
        ("mini", "invalid_response"),
        ("big", None),
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_blank_answer_is_billed_and_fails_the_empty_check(
    upstream: FakeUpstream, make_gateway: GatewayFactory, stream: bool
) -> None:
    """No check configured: a blank 200 still escalates once (not a retry on the
    same deployment), and its tokens are on the bill."""
    gateway = make_gateway()
    upstream.add_fault("empty", model="cheap-model", times=2)
    if stream:
        async with await gateway.stream(ask("hello")) as chat_stream:
            text = "".join([d.text async for d in chat_stream])
        record = chat_stream.record
    else:
        result = await gateway.chat(ask("hello"))
        text, record = result.response.text(), result.record
    assert text == "Answer from strong-model: hello"
    assert trail(record) == [("mini", "quality_check"), ("big", None)]
    blank = record.attempts[0]
    assert blank.checks[0].name == "empty" and not blank.checks[0].passed
    assert blank.usage is not None and blank.usage.input_tokens > 0
    assert blank.cost_usd > 0 and record.cost.total_usd > record.attempts[1].cost_usd
    assert upstream.count("cheap-model") == 1


async def test_bad_request_is_not_retried_anywhere(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    upstream.add_fault("bad_request", model="cheap-model")
    with pytest.raises(AllAttemptsFailedError) as caught:
        await gateway.chat(ask("hello"))
    assert trail(caught.value.record) == [("mini", "bad_request")]
    assert caught.value.status == 400
    assert upstream.count() == 1


async def test_auth_failure_cools_down_and_moves_on(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    upstream.add_fault("auth", model="cheap-model")
    first = await gateway.chat(ask("hello"))
    second = await gateway.chat(ask("hello"))
    assert trail(first.record) == [("mini", "auth"), ("big", None)]
    assert trail(second.record) == [("mini", "circuit_open"), ("big", None)]


async def test_punt_fails_the_quality_check_and_escalates(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    routes = {
        "auto": {"router": "fixed", "checks": ["punt", {"kind": "min_length", "min_chars": 5}]}
    }
    gateway = make_gateway(routes=routes)
    upstream.add_fault("punt", model="cheap-model")
    result = await gateway.chat(ask("what is the airspeed of a swallow"))
    assert trail(result.record) == [("mini", "quality_check"), ("big", None)]
    rejected = result.record.attempts[0]
    assert [c.passed for c in rejected.checks] == [False, True]
    assert rejected.cost_usd > 0
    assert result.record.cost.attempts_usd == rejected.cost_usd + result.record.attempts[1].cost_usd
    again = await gateway.chat(ask("and a second question"))
    assert trail(again.record) == [("mini", None)]


async def test_invalid_json_content_fails_the_json_check(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(routes={"auto": {"router": "fixed", "checks": ["json"]}})
    upstream.add_fault("not_json_content", model="cheap-model")
    result = await gateway.chat(ask("give json", response_format={"type": "json_object"}))
    assert trail(result.record) == [("mini", "quality_check"), ("big", None)]
    assert '"answer"' in result.response.text()


async def test_checks_exhausted_return_the_last_answer_marked_degraded(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(routes={"auto": {"router": "fixed", "checks": ["punt"]}})
    result = await gateway.chat(ask("hard one [[fault=punt]]"))
    assert trail(result.record) == [("mini", "quality_check"), ("big", "quality_check")]
    assert result.record.status == "degraded"
    assert "strong-model" in upstream.requests[-1].model  # type: ignore[operator]
    strict = make_gateway(
        routes={"auto": {"router": "fixed", "checks": ["punt"], "on_checks_exhausted": "error"}}
    )
    with pytest.raises(AllAttemptsFailedError):
        await strict.chat(ask("hard one [[fault=punt]]"))


@pytest.mark.parametrize(
    ("confidence", "prompt", "options"),
    [
        (
            {"kind": "logprob", "threshold": 0.5},
            "hi [[logprob=-2.5 model=cheap-model]]",
            {"logprobs": True},
        ),
        (
            {"kind": "self_reported", "threshold": 0.8},
            "hi [[confidence=0.3 model=cheap-model]]",
            {"response_format": {"type": "json_object"}},
        ),
    ],
)
async def test_low_confidence_escalates(
    make_gateway: GatewayFactory,
    confidence: dict[str, object],
    prompt: str,
    options: dict[str, object],
) -> None:
    gateway = make_gateway(routes={"auto": {"router": "fixed", "confidence": confidence}})
    result = await gateway.chat(ask(prompt, **options))
    assert trail(result.record) == [("mini", "low_confidence"), ("big", None)]
    low, high = result.record.attempts
    assert low.confidence is not None and low.confidence < confidence["threshold"]  # type: ignore[operator]
    assert high.confidence is not None and high.confidence >= confidence["threshold"]  # type: ignore[operator]


async def test_attempt_budget_bounds_every_hop(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(
        tiers={"cheap": ["mini", "mini-b"], "strong": ["big", "claude"]},
        fallback={
            "max_attempts": 3,
            "retries_per_deployment": 2,
            "backoff": {"base_s": 0.001, "max_s": 0.002},
            "breaker": {"failure_threshold": 100},
        },
    )
    upstream.set_failure_rate(None, 1.0, fault="500")
    with pytest.raises(AllAttemptsFailedError) as caught:
        await gateway.chat(ask("hello"))
    assert len(caught.value.record.calls) == 3
    assert upstream.count() == 3
    assert "attempt budget of 3 used" in (caught.value.record.error or "")
    assert str(caught.value).startswith("all 3 calls failed: mini")


async def test_same_tier_backup_comes_before_escalation(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(
        tiers={"cheap": ["mini", "mini-b"], "strong": ["big"]},
        fallback={"retries_per_deployment": 0},
    )
    upstream.set_failure_rate("cheap-model", 1.0, fault="503")
    upstream.set_failure_rate("cheap-b-model", 1.0, fault="503")
    result = await gateway.chat(ask("hello"))
    assert sorted(a.deployment for a in result.record.attempts[:2]) == ["mini", "mini-b"]
    assert result.record.final_deployment == "big"


async def test_other_provider_catches_failures(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(
        tiers={"cheap": ["mini"], "strong": ["claude"]},
        routes={"auto": {"router": "fixed", "baseline": "claude"}},
    )
    upstream.set_failure_rate("cheap-model", 1.0, fault="500")
    result = await gateway.chat(ask("hello"))
    assert result.record.final_deployment == "claude"
    assert result.response.text().startswith("Answer from claude-model")
    usage = result.response.usage
    assert usage is not None and usage.input_tokens > 0
    expected = (usage.input_tokens * Decimal(3) + usage.output_tokens * Decimal(15)) / 10**6
    assert result.record.cost.attempts_usd == expected


def _with_timeout(upstream: FakeUpstream, timeout: dict[str, float]) -> dict[str, object]:
    v1 = upstream.base_url + "/v1"
    return {
        "mini": {"model": "cheap-model", "api_base": v1, "timeout": timeout},
        "big": {"model": "strong-model", "api_base": v1},
    }


@pytest.mark.parametrize(
    ("fault", "trigger"),
    [
        ("429", "rate_limited"),
        ("529", "upstream_5xx"),
        ("context_length", "context_window"),
        ("content_policy", "content_policy"),
        ("auth", "auth"),
        ("empty", "quality_check"),
    ],
)
async def test_anthropic_errors_are_translated_at_the_edge(
    upstream: FakeUpstream, make_gateway: GatewayFactory, fault: str, trigger: str
) -> None:
    gateway = make_gateway(
        tiers={"cheap": ["claude"], "strong": ["big"]}, fallback={"retries_per_deployment": 0}
    )
    upstream.add_fault(fault, model="claude-model")
    result = await gateway.chat(ask("hello"))
    assert trail(result.record) == [("claude", trigger), ("big", None)]


async def test_logprob_confidence_asks_for_logprobs_itself(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    confidence = {"kind": "logprob", "threshold": 0.5}
    gateway = make_gateway(routes={"auto": {"router": "fixed", "confidence": confidence}})
    result = await gateway.chat(ask("hi [[logprob=-2.5 model=cheap-model]]"))
    assert trail(result.record) == [("mini", "low_confidence"), ("big", None)]
    assert all(r.body.get("logprobs") is True for r in upstream.requests)


async def test_a_cancelled_request_is_recorded_with_its_attempts(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway()
    records: list[object] = []
    gateway.sinks.append(records.append)
    upstream.add_fault("500", model="cheap-model", times=2)
    upstream.add_fault("hang", model="strong-model")
    task = asyncio.create_task(gateway.chat(ask("hello")))
    await until(lambda: upstream.count("strong-model") > 0, what="the call to the strong tier")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (record,) = records
    assert record.status == "cancelled"  # type: ignore[attr-defined]
    assert trail(record) == [
        ("mini", "upstream_5xx"),
        ("mini", "upstream_5xx"),
        ("big", "cancelled"),
    ]


async def test_sse_parser_handles_crlf_split_across_reads() -> None:
    from tierwise.providers.base import parse_sse_block

    assert parse_sse_block(b"event: ping\ndata: {}") == ("ping", "{}")
    assert parse_sse_block(b": comment only") is None
    assert parse_sse_block(b"data: a\ndata: b") == ("", "a\nb")


@pytest.mark.parametrize(
    "options",
    [
        {"response_format": {"type": "json_schema", "json_schema": "not an object"}},
        {
            "tool_choice": {"type": "function", "function": 7},
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
    ],
)
async def test_malformed_options_are_bad_requests_for_library_callers(
    upstream: FakeUpstream, make_gateway: GatewayFactory, options: dict[str, object]
) -> None:
    gateway = make_gateway(tiers={"cheap": ["claude"]})
    with pytest.raises(AllAttemptsFailedError) as caught:
        await gateway.chat(ask("hello", **options))
    assert caught.value.status == 400
    assert [a.trigger for a in caught.value.record.attempts] == ["bad_request"]
    assert upstream.count() == 0
