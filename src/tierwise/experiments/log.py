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
REQUESTS = """SELECT r.variant AS variant, COUNT(*) AS n, SUM(r.baseline_pusd * 1e-12) AS baseline,
 SUM(CASE WHEN r.calls > 1 THEN 1 ELSE 0 END) AS fallbacks,
 SUM(r.escalated) AS escalations, MIN(r.created_at) AS first_at, MAX(r.created_at) AS last_at
 FROM requests r WHERE r.experiment = ? GROUP BY r.variant"""
FEEDBACK = (
    "JOIN (SELECT request_id, AVG(score) AS s FROM feedback GROUP BY request_id) f "
    "ON f.request_id = r.request_id"
)
JUDGED = "JOIN judgments j ON j.request_id = r.request_id AND j.score IS NOT NULL"
VALUES = {
    "cost": ("(r.cost_pusd * 1e-12)", ""),
    "latency": ("r.latency_ms", ""),
    "error_rate": ("CASE WHEN r.status = 'error' THEN 1 ELSE 0 END", ""),
    "satisfaction": ("f.s", FEEDBACK),
    "judge": ("j.score", JUDGED),
}
UNIT = "COALESCE(r.unit_key, r.request_id)"
CLUSTERED = """SELECT variant, COUNT(*) AS k, SUM(s) AS s, SUM(c) AS c, SUM(s * s) AS s2,
 SUM(c * c) AS c2, SUM(s * c) AS sc FROM (SELECT r.variant AS variant, {unit} AS unit,
 SUM({value}) AS s, COUNT(*) AS c FROM requests r {join} WHERE r.experiment = ?
 GROUP BY r.variant, {unit}) u GROUP BY variant"""
JUDGE_COST = """SELECT variant, SUM(cost_pusd * 1e-12) AS cost FROM judgments
 WHERE experiment = ? GROUP BY variant"""


@dataclass(frozen=True, slots=True)
class Moments:
    """One metric over the units of assignment (users, sessions, keys or requests):
    `k` units; sums over units of each unit's total `s` and count `c` of observations,
    and of `s^2`, `c^2` and `s*c`, enough for the ratio estimate of the per-observation
    mean and its variance with units as the independent draws."""

    k: int = 0
    s: float = 0.0
    c: float = 0.0
    s2: float = 0.0
    c2: float = 0.0
    sc: float = 0.0

    @property
    def n(self) -> int:
        """Observations."""
        return int(self.c)

    @property
    def mean(self) -> float:
        return self.s / self.c if self.c else float("nan")


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


def _moments(row: dict[str, Any] | None) -> Moments:
    if row is None:
        return Moments()
    return Moments(int(_f(row["k"])), *(_f(row[key]) for key in ("s", "c", "s2", "c2", "sc")))


async def metric_moments(store: Store, experiment: str, metric: str) -> dict[str, Moments]:
    """Per variant, `metric`'s moments over units."""
    value, join = VALUES[metric]
    statement = CLUSTERED.format(unit=UNIT, value=value, join=join)
    return {r["variant"]: _moments(r) for r in await store.query(statement, (experiment,))}


async def variant_data(store: Store, experiment: str) -> dict[str, VariantData]:
    """Per variant of `experiment`: requests, cost, latency, errors, feedback, judge."""
    requests = await store.query(REQUESTS, (experiment,))
    metrics = {m: await metric_moments(store, experiment, m) for m in VALUES}
    judge_cost = {r["variant"]: _f(r["cost"]) for r in await store.query(JUDGE_COST, (experiment,))}
    out = {}
    for row in requests:
        name = row["variant"]
        per = {m: metrics[m].get(name, Moments()) for m in VALUES}
        out[name] = VariantData(
            requests=int(_f(row["n"])),
            cost=per["cost"],
            baseline_usd=_f(row["baseline"]),
            latency=per["latency"],
            errors=per["error_rate"],
            fallbacks=int(_f(row["fallbacks"])),
            escalations=int(_f(row["escalations"])),
            satisfaction=per["satisfaction"],
            judge=per["judge"],
            judge_cost_usd=judge_cost.get(name, 0.0),
            first_at=row["first_at"],
            last_at=row["last_at"],
        )
    return out


RAW = """SELECT r.variant AS variant, SUM({value}) AS s, COUNT(*) AS c FROM requests r {join}
 WHERE r.experiment = ? GROUP BY r.variant, {unit} LIMIT ?"""


async def unit_values(
    store: Store, experiment: str, metric: str, limit: int = 200_000
) -> dict[str, tuple[list[float], list[float]]]:
    """Per variant: each unit's sum of `metric` and its count (up to `limit` units)."""
    value, join = VALUES[metric]
    statement = RAW.format(value=value, join=join, unit=UNIT)
    out: dict[str, tuple[list[float], list[float]]] = {}
    for row in await store.query(statement, (experiment, limit)):
        sums, counts = out.setdefault(row["variant"], ([], []))
        sums.append(_f(row["s"]))
        counts.append(_f(row["c"]))
    return out
