"""The request explorer's rows: one request as listed, and in detail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict, cast

from tierwise.store.sql import maybe, whole

LISTED = (
    "r.request_id, r.created_at, r.route, r.final_tier, r.final_model, r.status, r.calls, "
    "r.latency_ms, r.cost_pusd, r.savings_pusd, r.api_key"
)
DETAILED = (
    "r.request_id, r.created_at, r.route, r.router, r.decision_target, r.decision_reason, "
    "r.decision_scores, r.final_deployment, r.final_tier, r.final_model, r.status, r.error, "
    "r.calls, r.escalated, r.latency_ms, r.input_tokens, r.output_tokens, r.cost_pusd, "
    "r.attempts_pusd, r.checks_pusd, r.router_pusd, r.baseline_pusd, r.savings_pusd, "
    "r.api_key, r.team, r.prompt, r.answer"
)


class RequestRow(TypedDict):
    """One request as the explorer lists it."""

    request_id: str
    created_at: float
    route: str
    final_tier: str | None
    final_model: str | None
    status: str
    calls: int
    latency_ms: float | None
    cost_pusd: int
    savings_pusd: int
    api_key: str | None


class RequestDetail(TypedDict):
    """One request with its routing decision, money, prompt and answer; `team` is
    None for requests logged without one."""

    request_id: str
    created_at: float
    route: str
    router: str | None
    decision_target: str | None
    decision_reason: str | None
    decision_scores: str | None
    final_deployment: str | None
    final_tier: str | None
    final_model: str | None
    status: str
    error: str | None
    calls: int
    escalated: bool
    latency_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_pusd: int
    attempts_pusd: int
    checks_pusd: int
    router_pusd: int
    baseline_pusd: int
    savings_pusd: int
    api_key: str | None
    team: str | None
    prompt: str | None
    answer: str | None


def _whole(row: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {**row, **{name: whole(row[name]) for name in names}}


def listed(row: dict[str, Any]) -> RequestRow:
    return RequestRow(
        request_id=row["request_id"],
        created_at=float(row["created_at"]),
        route=row["route"],
        final_tier=row["final_tier"],
        final_model=row["final_model"],
        status=row["status"],
        calls=whole(row["calls"]),
        latency_ms=maybe(row["latency_ms"]),
        cost_pusd=whole(row["cost_pusd"]),
        savings_pusd=whole(row["savings_pusd"]),
        api_key=row["api_key"],
    )


DETAIL_WHOLE = (
    "calls", "input_tokens", "output_tokens", "cost_pusd", "attempts_pusd", "checks_pusd",
    "router_pusd", "baseline_pusd", "savings_pusd",
)  # fmt: skip


def detailed(row: dict[str, Any]) -> RequestDetail:
    fixed = {
        **_whole(row, DETAIL_WHOLE),
        "created_at": float(row["created_at"]),
        "escalated": bool(row["escalated"]),
        "latency_ms": maybe(row["latency_ms"]),
    }
    return cast(RequestDetail, fixed)
