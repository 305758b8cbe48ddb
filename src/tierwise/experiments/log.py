"""Experiment events and per-variant sufficient statistics, in the request store."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from tierwise.experiments.registry import Event
from tierwise.experiments.spec import ExperimentConfig
from tierwise.store.base import Store

INSERT_EVENT = (
    "INSERT INTO experiment_events (experiment, created_at, action, definition, serving, "
    "reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
EVENTS_AFTER = (
    "SELECT experiment, created_at, action, definition, serving, reason, actor "
    "FROM experiment_events WHERE created_at > ? ORDER BY created_at"
)
U = "(r.cost_pusd * 1e-12)"
B = "(r.baseline_pusd * 1e-12)"
REQUESTS = f"""SELECT r.variant AS variant, COUNT(*) AS n,
 SUM({U}) AS cost, SUM({U} * {U}) AS cost2, SUM({B}) AS baseline,
 SUM(r.latency_ms) AS latency, SUM(r.latency_ms * r.latency_ms) AS latency2,
 SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END) AS errors,
 SUM(CASE WHEN r.calls > 1 THEN 1 ELSE 0 END) AS fallbacks,
 SUM(r.escalated) AS escalations, MIN(r.created_at) AS first_at, MAX(r.created_at) AS last_at
 FROM requests r WHERE r.experiment = ? GROUP BY r.variant"""
FEEDBACK = """SELECT r.variant AS variant, COUNT(*) AS n, SUM(f.s) AS total,
 SUM(f.s * f.s) AS total2
 FROM requests r JOIN (SELECT request_id, AVG(score) AS s FROM feedback GROUP BY request_id) f
 ON f.request_id = r.request_id WHERE r.experiment = ? GROUP BY r.variant"""
JUDGMENTS = """SELECT variant, COUNT(score) AS n, SUM(score) AS total,
 SUM(score * score) AS total2, SUM(cost_pusd * 1e-12) AS cost, COUNT(*) AS calls
 FROM judgments WHERE experiment = ? GROUP BY variant"""


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of one metric."""

    n: int = 0
    total: float = 0.0
    total2: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


@dataclass(frozen=True, slots=True)
class VariantData:
    requests: int
    cost: Moments
    baseline_usd: float
    latency: Moments
    errors: Moments
    fallbacks: int
    escalations: int
    satisfaction: Moments
    judge: Moments
    judge_cost_usd: float
    first_at: float | None
    last_at: float | None


async def write_event(store: Store, event: Event) -> None:
    definition = event.definition.model_dump_json() if event.definition else None
    await store.execute(
        INSERT_EVENT,
        (
            event.experiment,
            event.created_at,
            event.action,
            definition,
            event.serving,
            event.reason,
            event.actor,
        ),
    )


async def read_events(store: Store, after: float = 0.0) -> list[Event]:
    rows = await store.query(EVENTS_AFTER, (after,))
    return [_event(row) for row in rows]


def _event(row: dict[str, Any]) -> Event:
    raw = row["definition"]
    definition = ExperimentConfig.model_validate(orjson.loads(raw)) if raw else None
    return Event(
        row["experiment"],
        float(row["created_at"]),
        row["action"],
        definition,
        row["serving"],
        row["reason"] or "",
        row["actor"] or "",
    )


def _f(value: Any) -> float:
    return float(value) if isinstance(value, int | float | Decimal) else 0.0


def _moments(row: dict[str, Any] | None, n: str, total: str, total2: str) -> Moments:
    if row is None:
        return Moments()
    return Moments(int(_f(row[n])), _f(row[total]), _f(row[total2]))


async def variant_data(store: Store, experiment: str) -> dict[str, VariantData]:
    """Per variant of `experiment`: requests, cost, latency, errors, feedback, judge."""
    requests = await store.query(REQUESTS, (experiment,))
    feedback = {r["variant"]: r for r in await store.query(FEEDBACK, (experiment,))}
    judged = {r["variant"]: r for r in await store.query(JUDGMENTS, (experiment,))}
    out = {}
    for row in requests:
        name, n = row["variant"], int(_f(row["n"]))
        errors = int(_f(row["errors"]))
        judge = judged.get(name)
        out[name] = VariantData(
            requests=n,
            cost=_moments(row, "n", "cost", "cost2"),
            baseline_usd=_f(row["baseline"]),
            latency=_moments(row, "n", "latency", "latency2"),
            errors=Moments(n, float(errors), float(errors)),
            fallbacks=int(_f(row["fallbacks"])),
            escalations=int(_f(row["escalations"])),
            satisfaction=_moments(feedback.get(name), "n", "total", "total2"),
            judge=_moments(judge, "n", "total", "total2"),
            judge_cost_usd=_f(judge["cost"]) if judge else 0.0,
            first_at=row["first_at"],
            last_at=row["last_at"],
        )
    return out


RAW_COSTS = """SELECT variant, cost_pusd * 1e-12 AS value FROM requests
 WHERE experiment = ? ORDER BY created_at DESC LIMIT ?"""
RAW_FEEDBACK = """SELECT r.variant AS variant, f.s AS value FROM requests r
 JOIN (SELECT request_id, AVG(score) AS s FROM feedback GROUP BY request_id) f
 ON f.request_id = r.request_id WHERE r.experiment = ? ORDER BY r.created_at DESC LIMIT ?"""


async def raw_values(
    store: Store, experiment: str, limit: int = 200_000
) -> dict[str, dict[str, list[float]]]:
    """Per metric (`cost`, `satisfaction`), per variant: the newest `limit` values."""
    out: dict[str, dict[str, list[float]]] = {}
    for metric, statement in (("cost", RAW_COSTS), ("satisfaction", RAW_FEEDBACK)):
        rows = await store.query(statement, (experiment, limit))
        per: dict[str, list[float]] = {}
        for row in rows:
            per.setdefault(row["variant"], []).append(_f(row["value"]))
        out[metric] = per
    return out
