"""Per-variant statistics of an experiment's requests, over its units of assignment
(the unit key, else each request on its own)."""

from __future__ import annotations

from typing import Any, TypedDict

from tierwise.store.sql import Engine, real, whole

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
METRICS = tuple(VALUES)
UNIT = "COALESCE(r.unit_key, r.request_id)"
UNIT_LIMIT = 200_000


class VariantTotals(TypedDict):
    """A variant's requests: how many, their baseline cost in USD, how many fell back
    or escalated, and when the first and last started."""

    variant: str
    n: int
    baseline: float
    fallbacks: int
    escalations: int
    first_at: float | None
    last_at: float | None


class UnitMoments(TypedDict):
    """Over `k` units: sums of each unit's total `s` and count `c`, and of `s^2`,
    `c^2` and `s*c`."""

    k: int
    s: float
    c: float
    s2: float
    c2: float
    sc: float


class UnitSum(TypedDict):
    """One unit of a variant: the sum of a metric over its requests, and their count."""

    variant: str
    s: float
    c: float


def _metric(metric: str) -> tuple[str, str]:
    """The SQL value of `metric` per request and the join it needs."""
    if metric not in VALUES:
        raise ValueError(f"unknown experiment metric {metric!r}; known: {', '.join(METRICS)}")
    return VALUES[metric]


class ExperimentStats(Engine):
    async def variant_totals(self, experiment: str) -> list[VariantTotals]:
        q = self.bind()
        statement = f"""SELECT r.variant AS variant, COUNT(*) AS n,
            SUM(r.baseline_pusd * 1e-12) AS baseline,
            SUM(CASE WHEN r.calls > 1 THEN 1 ELSE 0 END) AS fallbacks,
            SUM(r.escalated) AS escalations, MIN(r.created_at) AS first_at,
            MAX(r.created_at) AS last_at
            FROM requests r WHERE r.experiment = {q(experiment)} GROUP BY r.variant"""
        return [_totals(r) for r in await self._fetch(statement, q.values)]

    async def unit_moments(self, experiment: str, metric: str) -> dict[str, UnitMoments]:
        """Per variant, the moments of `metric` (one of `METRICS`) over units."""
        value, join = _metric(metric)
        q = self.bind()
        statement = f"""SELECT variant, COUNT(*) AS k, SUM(s) AS s, SUM(c) AS c,
            SUM(s * s) AS s2, SUM(c * c) AS c2, SUM(s * c) AS sc
            FROM (SELECT r.variant AS variant, {UNIT} AS unit, SUM({value}) AS s,
                COUNT(*) AS c FROM requests r {join} WHERE r.experiment = {q(experiment)}
                GROUP BY r.variant, {UNIT}) u
            GROUP BY variant"""
        return {r["variant"]: _moments(r) for r in await self._fetch(statement, q.values)}

    async def judge_costs(self, experiment: str) -> dict[str, float]:
        """Per variant, what judging its answers cost in USD."""
        q = self.bind()
        statement = f"""SELECT variant, SUM(cost_pusd * 1e-12) AS cost FROM judgments
            WHERE experiment = {q(experiment)} GROUP BY variant"""
        return {r["variant"]: real(r["cost"]) for r in await self._fetch(statement, q.values)}

    async def unit_sums(
        self, experiment: str, metric: str, limit: int = UNIT_LIMIT
    ) -> list[UnitSum]:
        """Each unit's sum of `metric` and its count (up to `limit` units)."""
        value, join = _metric(metric)
        q = self.bind()
        statement = f"""SELECT r.variant AS variant, SUM({value}) AS s, COUNT(*) AS c
            FROM requests r {join} WHERE r.experiment = {q(experiment)}
            GROUP BY r.variant, {UNIT} LIMIT {q(int(limit))}"""
        rows = await self._fetch(statement, q.values)
        return [UnitSum(variant=r["variant"], s=real(r["s"]), c=real(r["c"])) for r in rows]


def _totals(row: dict[str, Any]) -> VariantTotals:
    first, last = row["first_at"], row["last_at"]
    return VariantTotals(
        variant=row["variant"],
        n=whole(row["n"]),
        baseline=real(row["baseline"]),
        fallbacks=whole(row["fallbacks"]),
        escalations=whole(row["escalations"]),
        first_at=None if first is None else float(first),
        last_at=None if last is None else float(last),
    )


def _moments(row: dict[str, Any]) -> UnitMoments:
    return UnitMoments(
        k=whole(row["k"]),
        s=real(row["s"]),
        c=real(row["c"]),
        s2=real(row["s2"]),
        c2=real(row["c2"]),
        sc=real(row["sc"]),
    )
