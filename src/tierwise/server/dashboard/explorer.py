"""What the request explorer shows: a page of recent requests, and one request's
routing decision and attempts, with money and times already written for people.
The templates lay these out and compute nothing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import orjson

from tierwise.observability.formatting import ms, usd, when
from tierwise.observability.report import redact
from tierwise.store import from_pusd
from tierwise.store.reports import AttemptSummary
from tierwise.store.request_rows import RequestDetail, RequestRow


@dataclass(frozen=True, slots=True)
class RequestLine:
    request_id: str
    created: str
    route: str
    tier: str
    model: str
    status: str
    calls: int
    latency: str
    cost: str
    cost_exact: str
    key: str


@dataclass(frozen=True, slots=True)
class Score:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class AttemptLine:
    seq: int
    deployment: str
    tier: str
    outcome: str
    trigger: str
    status: str
    latency: str
    cost: str
    cost_exact: str
    detail: str


@dataclass(frozen=True, slots=True)
class Fact:
    testid: str
    label: str
    value: str
    exact: str | None = None


@dataclass(frozen=True, slots=True)
class DetailView:
    request_id: str
    status: str
    decision: list[Fact]
    scores: list[Score]
    attempts: list[AttemptLine]
    totals: list[Fact]
    error: str | None
    prompt: str | None
    answer: str | None


def _money(pusd: int) -> tuple[str, str]:
    value = from_pusd(pusd)
    return usd(value), f"{value:f}"


def request_line(row: RequestRow) -> RequestLine:
    cost, exact = _money(row["cost_pusd"])
    return RequestLine(
        request_id=row["request_id"],
        created=when(row["created_at"]),
        route=row["route"],
        tier=row["final_tier"] or "-",
        model=row["final_model"] or "-",
        status=row["status"],
        calls=row["calls"],
        latency=ms(row["latency_ms"]),
        cost=cost,
        cost_exact=exact,
        key=row["api_key"] or "-",
    )


def scores_of(text: str | None) -> list[Score]:
    """The router's scores, highest first; none when they cannot be read."""
    try:
        found = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return []
    if not isinstance(found, dict):
        return []
    numeric = {str(k): v for k, v in found.items() if isinstance(v, int | float)}
    ordered = sorted(numeric.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Score(name, plain(value)) for name, value in ordered]


def plain(value: float) -> str:
    """Four significant digits, never in scientific notation."""
    return format(Decimal(f"{value:.4g}").normalize(), "f")


def attempt_line(row: AttemptSummary) -> AttemptLine:
    cost, exact = _money(row["cost_pusd"])
    return AttemptLine(
        seq=row["seq"],
        deployment=row["deployment"],
        tier=row["tier"] or "-",
        outcome=row["outcome"] if row["called"] else f"{row['outcome']} (not called)",
        trigger=row["trigger"] or "",
        status="" if row["status"] is None else f"HTTP {row['status']}",
        latency=ms(row["latency_ms"]),
        cost=cost,
        cost_exact=exact,
        detail=redact(row["detail"]) or "",
    )


def _decision(row: RequestDetail) -> list[Fact]:
    return [
        Fact("detail-created", "started", when(row["created_at"])),
        Fact("detail-route", "route", row["route"]),
        Fact("detail-router", "router", row["router"] or "-"),
        Fact("detail-target", "target", row["decision_target"] or "-"),
        Fact("detail-reason", "reason", row["decision_reason"] or "-"),
        Fact("detail-final", "answered by", _final(row)),
        Fact("detail-key", "API key", row["api_key"] or "-"),
        Fact("detail-team", "team", row["team"] or "-"),
    ]


def _final(row: RequestDetail) -> str:
    if row["final_deployment"] is None:
        return "-"
    return f"{row['final_deployment']} ({row['final_tier'] or '-'}, {row['final_model'] or '-'})"


def _totals(row: RequestDetail) -> list[Fact]:
    money = [
        ("detail-cost", "total cost", row["cost_pusd"]),
        ("detail-attempts-cost", "attempts", row["attempts_pusd"]),
        ("detail-checks-cost", "checks", row["checks_pusd"]),
        ("detail-router-cost", "router", row["router_pusd"]),
        ("detail-baseline", "baseline cost", row["baseline_pusd"]),
        ("detail-savings", "savings", row["savings_pusd"]),
    ]
    facts = [Fact(testid, label, *_money(pusd)) for testid, label, pusd in money]
    tokens = f"{row['input_tokens']} in / {row['output_tokens']} out"
    return [
        Fact("detail-calls", "calls", str(row["calls"])),
        Fact("detail-latency", "latency", ms(row["latency_ms"])),
        Fact("detail-tokens", "tokens", tokens),
        *facts,
    ]


def detail_view(row: RequestDetail, attempts: list[AttemptSummary]) -> DetailView:
    return DetailView(
        request_id=row["request_id"],
        status=row["status"],
        decision=_decision(row),
        scores=scores_of(row["decision_scores"]),
        attempts=[attempt_line(a) for a in attempts],
        totals=_totals(row),
        error=redact(row["error"]),
        prompt=row["prompt"],
        answer=row["answer"],
    )
