"""Request records to table rows, and back to exact money."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from tierwise.record import AttemptRecord, RequestRecord

PICO = Decimal(10) ** 12
REQUEST_COLUMNS = (
    "request_id",
    "created_at",
    "route",
    "router",
    "decision_target",
    "decision_reason",
    "decision_scores",
    "router_confident",
    "final_deployment",
    "final_tier",
    "final_model",
    "provider",
    "status",
    "error",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_pusd",
    "attempts_pusd",
    "checks_pusd",
    "router_pusd",
    "baseline_pusd",
    "savings_pusd",
    "latency_ms",
    "first_token_ms",
    "calls",
    "escalated",
    "variant",
    "user_id",
    "api_key",
    "prompt",
    "answer",
    "experiment",
    "prompt_sketch",
    "unit_key",
    "client_request_id",
    "cache",
    "decision_propensity",
    "explored",
    "exploration_cost_usd",
    "team",
)
ATTEMPT_COLUMNS = (
    "request_id",
    "seq",
    "deployment",
    "tier",
    "model",
    "provider",
    "called",
    "outcome",
    "trigger",
    "detail",
    "status",
    "latency_ms",
    "first_token_ms",
    "input_tokens",
    "output_tokens",
    "cost_pusd",
    "check_pusd",
    "confidence",
)
Redactor = Callable[[str], str]


def to_pusd(usd: Decimal) -> int:
    """US dollars as integer pico-dollars (exact for prices with up to six decimals)."""
    return int((usd * PICO).to_integral_value(ROUND_HALF_EVEN))


def from_pusd(pusd: int | None) -> Decimal:
    return Decimal(pusd or 0) / PICO


@dataclass(frozen=True, slots=True)
class Capture:
    """What text to keep: prompts and answers only when enabled, capped, redacted."""

    prompts: bool = False
    answers: bool = False
    max_chars: int = 4000
    redactors: Sequence[Redactor] = field(default_factory=tuple)

    @classmethod
    def with_patterns(cls, patterns: Sequence[str], **options: Any) -> Capture:
        compiled = [re.compile(p) for p in patterns]
        redactors = [_pattern_redactor(p) for p in compiled]
        return cls(redactors=tuple(redactors), **options)

    def keep(self, text: str | None, enabled: bool) -> str | None:
        if not enabled or text is None:
            return None
        for redact in self.redactors:
            text = redact(text)
        return text[: self.max_chars]


def _pattern_redactor(pattern: re.Pattern[str]) -> Redactor:
    return lambda text: pattern.sub("[REDACTED]", text)


def request_row(record: RequestRecord, capture: Capture) -> tuple[Any, ...]:
    decision = record.decision
    final = next((a for a in reversed(record.attempts) if a.called and a.outcome == "ok"), None)
    usage = [a.usage for a in record.attempts if a.usage is not None]
    cost = record.cost
    return (
        record.request_id,
        record.started_at,
        record.route,
        decision.router if decision else None,
        decision.target if decision else None,
        decision.reason if decision else None,
        orjson.dumps(decision.scores).decode() if decision else None,
        int(decision.confident) if decision else None,
        record.final_deployment,
        record.final_tier,
        final.model if final else None,
        final.provider if final else None,
        record.status,
        record.error,
        sum(u.input_tokens for u in usage),
        sum(u.output_tokens for u in usage),
        sum(u.cached_input_tokens for u in usage),
        to_pusd(cost.total_usd),
        to_pusd(cost.attempts_usd),
        to_pusd(cost.checks_usd),
        to_pusd(cost.router_usd),
        to_pusd(cost.baseline_usd),
        to_pusd(cost.savings_usd),
        record.latency_ms,
        record.first_token_ms,
        len(record.calls),
        int(record.escalated),
        record.variant,
        record.user,
        record.api_key,
        capture.keep(record.prompt, capture.prompts),
        capture.keep(record.answer, capture.answers),
        record.experiment,
        _sketch(record.prompt_sketch),
        record.unit_key,
        record.client_request_id,
        record.cache,
        decision.propensity if decision else None,
        int(decision.explored) if decision else 0,
        to_pusd(cost.exploration_usd),
        record.team,
    )


def _sketch(values: Sequence[float] | None) -> str | None:
    return None if values is None else orjson.dumps([round(v, 5) for v in values]).decode()


def attempt_rows(record: RequestRecord) -> list[tuple[Any, ...]]:
    return [_attempt_row(record.request_id, i, a) for i, a in enumerate(record.attempts)]


def _attempt_row(request_id: str, seq: int, a: AttemptRecord) -> tuple[Any, ...]:
    return (
        request_id,
        seq,
        a.deployment,
        a.tier,
        a.model,
        a.provider,
        int(a.called),
        a.outcome,
        a.trigger,
        a.detail[:1000],
        a.status,
        a.latency_ms,
        a.first_token_ms,
        a.usage.input_tokens if a.usage else None,
        a.usage.output_tokens if a.usage else None,
        to_pusd(a.cost_usd),
        to_pusd(a.check_cost_usd),
        a.confidence,
    )
