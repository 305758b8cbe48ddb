"""What reports read from the request log for requests started in [since, until):
portable aggregates per route and tier, per fallback trigger and per time bucket,
latency samples and recent failures. Money is in integer pico-dollars."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from tierwise.store.request_rows import (
    DETAILED,
    LISTED,
    RequestDetail,
    RequestRow,
    detailed,
    listed,
)
from tierwise.store.sql import Bind, Engine, maybe, real, whole

MONEY = ("spend", "baseline", "savings", "router", "checks", "exploration")
COUNTS = ("n", "errors", "degraded", "cancelled", "fallbacks", "escalations", "tin", "tout")
SUMS = ("lat_sum", "ttft_sum")
MONEY_SUMS = (
    "SUM(r.cost_pusd) AS spend, SUM(r.baseline_pusd) AS baseline, "
    "SUM(r.savings_pusd) AS savings, SUM(r.router_pusd) AS router, "
    "SUM(r.checks_pusd) AS checks, SUM(r.exploration_cost_usd) AS exploration"
)
FAILED = "('error', 'degraded', 'cancelled')"


class GroupTotals(TypedDict):
    """One route and final tier: requests (`n`), outcomes, fallbacks, escalations,
    tokens (`tin`, `tout`), latency and first-token sums and counts, and money."""

    route: str
    tier: str | None
    n: int
    errors: int
    degraded: int
    cancelled: int
    fallbacks: int
    escalations: int
    tin: int
    tout: int
    lat_sum: float
    lat_n: int
    ttft_sum: float
    ttft_n: int
    spend: int
    baseline: int
    savings: int
    router: int
    checks: int
    exploration: int


class LatencySample(TypedDict):
    route: str
    tier: str | None
    ms: float


class FeedbackTotal(TypedDict):
    """One route and final tier: how many feedback scores, and their sum."""

    route: str
    tier: str | None
    n: int
    total: float


class TriggerTotals(TypedDict):
    """Attempts that ended with `trigger`, and how many were followed by another
    attempt on the same tier (fallbacks) or on another tier (escalations)."""

    trigger: str
    n: int
    fallbacks: int
    escalations: int


class BucketTotals(TypedDict):
    """Requests in the `bucket`th step after `since`, and their money."""

    bucket: int
    n: int
    spend: int
    baseline: int
    savings: int
    router: int
    checks: int
    exploration: int


class FailedRequest(TypedDict):
    request_id: str
    created_at: float
    route: str
    final_tier: str | None
    status: str
    error: str | None
    latency_ms: float | None
    cost_pusd: int
    api_key: str | None
    prompt: str | None


class AttemptSummary(TypedDict):
    request_id: str
    seq: int
    deployment: str
    tier: str | None
    called: bool
    outcome: str
    trigger: str | None
    detail: str | None
    status: int | None
    latency_ms: float | None
    cost_pusd: int


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which requests a view shows: one route, one final model, some API key names
    (an empty tuple matches no request), and one team: the requests logged with it,
    and those logged without a team (before teams were logged) whose key is one of
    `team_keys`; None matches all."""

    route: str | None = None
    model: str | None = None
    api_keys: tuple[str, ...] | None = None
    team: str | None = None
    team_keys: tuple[str, ...] = ()


EVERYTHING = RequestFilter()


class SpendTotals(TypedDict):
    """One value of a grouping column (None when the request had none): requests,
    money in pico-dollars, and the latency sum and count. Grouped by team, requests
    logged without a team are grouped by their key name, given as `unteamed`."""

    name: str | None
    unteamed: str | None
    n: int
    spend: int
    baseline: int
    savings: int
    lat_sum: float
    lat_n: int


SPEND_COLUMNS = {
    "key": "r.api_key",
    "team": "r.team",
    "user": "r.user_id",
    "route": "r.route",
    "model": "r.final_model",
}


UNTEAMED = "CASE WHEN r.team IS NULL THEN r.api_key END"


class FilterChoices(TypedDict):
    """The routes and final models that requests in a range used."""

    routes: list[str]
    models: list[str]


def _matching(q: Bind, where: RequestFilter) -> str:
    """` AND ...` conditions for `where` (empty when it matches everything)."""
    parts = []
    if where.route is not None:
        parts.append(f"r.route = {q(where.route)}")
    if where.model is not None:
        parts.append(f"r.final_model = {q(where.model)}")
    if where.api_keys is not None:
        keys = f"r.api_key IN ({q.many(where.api_keys)})" if where.api_keys else "1 = 0"
        parts.append(keys)
    if where.team is not None:
        parts.append(_of_team(q, where.team, where.team_keys))
    return "".join(f" AND {p}" for p in parts)


def _of_team(q: Bind, team: str, keys: tuple[str, ...]) -> str:
    logged = f"r.team = {q(team)}"
    if not keys:
        return logged
    return f"({logged} OR (r.team IS NULL AND r.api_key IN ({q.many(keys)})))"


def _in_range(q: Bind, since: float, until: float, where: RequestFilter | None = None) -> str:
    """Requests started in [since, until) that match `where` (all when None)."""
    found = f"r.created_at >= {q(since)} AND r.created_at < {q(until)}"
    return found if where is None else found + _matching(q, where)


class ReportReads(Engine):
    async def report_groups(
        self, since: float, until: float, where: RequestFilter = EVERYTHING
    ) -> list[GroupTotals]:
        q = self.bind()
        statement = f"""SELECT r.route AS route, r.final_tier AS tier, COUNT(*) AS n,
            SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END) AS errors,
            SUM(CASE WHEN r.status = 'degraded' THEN 1 ELSE 0 END) AS degraded,
            SUM(CASE WHEN r.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
            SUM(CASE WHEN r.calls > 1 THEN 1 ELSE 0 END) AS fallbacks,
            SUM(r.escalated) AS escalations,
            SUM(r.input_tokens) AS tin, SUM(r.output_tokens) AS tout,
            SUM(r.latency_ms) AS lat_sum, COUNT(r.latency_ms) AS lat_n,
            SUM(r.first_token_ms) AS ttft_sum, COUNT(r.first_token_ms) AS ttft_n,
            {MONEY_SUMS}
            FROM requests r WHERE {_in_range(q, since, until, where)}
            GROUP BY r.route, r.final_tier"""
        return [_group(r) for r in await self._fetch(statement, q.values)]

    async def report_spend(
        self, since: float, until: float, by: str, where: RequestFilter = RequestFilter()
    ) -> list[SpendTotals]:
        """Requests, spend, baseline and savings per value of one of `SPEND_COLUMNS`
        (`key`, `team`, `user`, `route`, `model`); raises ValueError for any other
        name. By team, requests logged without a team come per key (`unteamed`)."""
        column = SPEND_COLUMNS.get(by)
        if column is None:
            raise ValueError(f"cannot group spend by {by!r}: use one of {sorted(SPEND_COLUMNS)}")
        unteamed, grouped = ("NULL", column) if by != "team" else (UNTEAMED, f"r.team, {UNTEAMED}")
        q = self.bind()
        statement = f"""SELECT {column} AS name, {unteamed} AS unteamed, COUNT(*) AS n,
            SUM(r.cost_pusd) AS spend, SUM(r.baseline_pusd) AS baseline,
            SUM(r.savings_pusd) AS savings,
            SUM(r.latency_ms) AS lat_sum, COUNT(r.latency_ms) AS lat_n
            FROM requests r WHERE {_in_range(q, since, until)}{_matching(q, where)}
            GROUP BY {grouped}"""
        rows = await self._fetch(statement, q.values)
        return [_spend(r) for r in rows]

    async def report_latencies(
        self, since: float, until: float, limit: int, where: RequestFilter = EVERYTHING
    ) -> list[LatencySample]:
        """The latencies of the newest `limit` requests that have one."""
        q = self.bind()
        statement = f"""SELECT r.route AS route, r.final_tier AS tier, r.latency_ms AS ms
            FROM requests r WHERE {_in_range(q, since, until, where)} AND r.latency_ms IS NOT NULL
            ORDER BY r.created_at DESC LIMIT {q(int(limit))}"""
        rows = await self._fetch(statement, q.values)
        return [LatencySample(route=r["route"], tier=r["tier"], ms=real(r["ms"])) for r in rows]

    async def report_feedback(
        self, since: float, until: float, where: RequestFilter = EVERYTHING
    ) -> list[FeedbackTotal]:
        """Feedback on the requests in the range, per route and final tier."""
        q = self.bind()
        statement = f"""SELECT r.route AS route, r.final_tier AS tier, COUNT(*) AS n,
            SUM(f.score) AS total
            FROM feedback f JOIN requests r ON r.request_id = f.request_id
            WHERE {_in_range(q, since, until, where)} GROUP BY r.route, r.final_tier"""
        rows = await self._fetch(statement, q.values)
        return [
            FeedbackTotal(route=r["route"], tier=r["tier"], n=whole(r["n"]), total=real(r["total"]))
            for r in rows
        ]

    async def report_triggers(
        self, since: float, until: float, where: RequestFilter = EVERYTHING
    ) -> list[TriggerTotals]:
        q = self.bind()
        statement = f"""SELECT a.trigger AS trigger, COUNT(*) AS n,
            SUM(CASE WHEN b.seq IS NOT NULL AND COALESCE(b.tier, '') = COALESCE(a.tier, '')
                THEN 1 ELSE 0 END) AS fallbacks,
            SUM(CASE WHEN b.seq IS NOT NULL AND COALESCE(b.tier, '') <> COALESCE(a.tier, '')
                THEN 1 ELSE 0 END) AS escalations
            FROM attempts a JOIN requests r ON r.request_id = a.request_id
            LEFT JOIN attempts b ON b.request_id = a.request_id AND b.seq = a.seq + 1
            WHERE {_in_range(q, since, until, where)} AND a.trigger IS NOT NULL
            GROUP BY a.trigger"""
        return [
            TriggerTotals(
                trigger=r["trigger"],
                n=whole(r["n"]),
                fallbacks=whole(r["fallbacks"]),
                escalations=whole(r["escalations"]),
            )
            for r in await self._fetch(statement, q.values)
        ]

    async def report_buckets(
        self, since: float, until: float, step: float, where: RequestFilter = EVERYTHING
    ) -> list[BucketTotals]:
        """Per step of `step` seconds from `since` that has requests: its index (the
        floor of the offset over the step, on both engines) and totals."""
        q = self.bind()
        start, width = q(since), q(float(step))
        offset = f"(r.created_at - {start}) / {width}"
        bucket = (
            f"CAST({offset} AS INTEGER) - "
            f"CASE WHEN CAST({offset} AS INTEGER) > {offset} THEN 1 ELSE 0 END"
        )
        statement = f"""SELECT t.bucket AS bucket, COUNT(*) AS n,
            SUM(t.cost_pusd) AS spend, SUM(t.baseline_pusd) AS baseline,
            SUM(t.savings_pusd) AS savings, SUM(t.router_pusd) AS router,
            SUM(t.checks_pusd) AS checks, SUM(t.exploration_cost_usd) AS exploration
            FROM (SELECT {bucket} AS bucket, r.cost_pusd, r.baseline_pusd, r.savings_pusd,
                r.router_pusd, r.checks_pusd, r.exploration_cost_usd FROM requests r
                WHERE {_in_range(q, since, until, where)}) t
            GROUP BY t.bucket"""
        rows = await self._fetch(statement, q.values)
        return [cast(BucketTotals, _whole(r, ("bucket", "n", *MONEY))) for r in rows]

    async def report_failures(
        self, since: float, until: float, limit: int, where: RequestFilter = EVERYTHING
    ) -> list[FailedRequest]:
        """The newest `limit` requests that ended in an error, degraded or cancelled."""
        q = self.bind()
        statement = f"""SELECT r.request_id, r.created_at, r.route, r.final_tier, r.status,
            r.error, r.latency_ms, r.cost_pusd, r.api_key, r.prompt
            FROM requests r WHERE {_in_range(q, since, until, where)} AND r.status IN {FAILED}
            ORDER BY r.created_at DESC LIMIT {q(int(limit))}"""
        return [_failed(r) for r in await self._fetch(statement, q.values)]

    async def attempts_of(self, request_ids: Sequence[str]) -> list[AttemptSummary]:
        """The attempts of the given requests, in order within each request."""
        if not request_ids:
            return []
        q = self.bind()
        statement = f"""SELECT request_id, seq, deployment, tier, called, outcome, trigger,
            detail, status, latency_ms, cost_pusd FROM attempts
            WHERE request_id IN ({q.many(request_ids)}) ORDER BY request_id, seq"""
        return [_attempt(r) for r in await self._fetch(statement, q.values)]

    async def recent_requests(
        self, since: float, until: float, where: RequestFilter, limit: int, offset: int = 0
    ) -> list[RequestRow]:
        """Requests in the range that match `where`, newest first, a page at a time."""
        q = self.bind()
        statement = f"""SELECT {LISTED} FROM requests r
            WHERE {_in_range(q, since, until, where)}
            ORDER BY r.created_at DESC, r.request_id DESC
            LIMIT {q(int(limit))} OFFSET {q(int(offset))}"""
        return [listed(r) for r in await self._fetch(statement, q.values)]

    async def count_matching(self, since: float, until: float, where: RequestFilter) -> int:
        """How many requests in the range match `where`."""
        q = self.bind()
        statement = f"""SELECT COUNT(*) AS n FROM requests r
            WHERE {_in_range(q, since, until, where)}"""
        return whole((await self._fetch(statement, q.values))[0]["n"])

    async def request_detail(self, request_id: str) -> RequestDetail | None:
        """One request's decision, money and text, or None when it is not logged."""
        q = self.bind()
        statement = f"SELECT {DETAILED} FROM requests r WHERE r.request_id = {q(request_id)}"
        rows = await self._fetch(statement, q.values)
        return detailed(rows[0]) if rows else None

    async def filter_choices(
        self, since: float, until: float, where: RequestFilter = EVERYTHING
    ) -> FilterChoices:
        """The distinct routes and final models of the requests in the range that
        match `where`."""
        found: dict[str, list[str]] = {}
        for column in ("route", "final_model"):
            q = self.bind()
            statement = f"""SELECT DISTINCT r.{column} AS v FROM requests r
                WHERE {_in_range(q, since, until)}{_matching(q, where)}
                AND r.{column} IS NOT NULL ORDER BY v"""
            found[column] = [str(r["v"]) for r in await self._fetch(statement, q.values)]
        return FilterChoices(routes=found["route"], models=found["final_model"])

    async def logged_teams(
        self, since: float, until: float, where: RequestFilter = EVERYTHING
    ) -> list[str]:
        """The distinct teams logged with the requests in the range that match `where`."""
        q = self.bind()
        statement = f"""SELECT DISTINCT r.team AS v FROM requests r
            WHERE {_in_range(q, since, until, where)} AND r.team IS NOT NULL ORDER BY v"""
        return [str(r["v"]) for r in await self._fetch(statement, q.values)]


def _whole(row: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {**row, **{name: whole(row[name]) for name in names}}


def _group(row: dict[str, Any]) -> GroupTotals:
    counted = _whole(row, (*COUNTS, "lat_n", "ttft_n", *MONEY))
    return cast(GroupTotals, {**counted, **{name: real(row[name]) for name in SUMS}})


def _spend(row: dict[str, Any]) -> SpendTotals:
    counted = _whole(row, ("n", "spend", "baseline", "savings", "lat_n"))
    named = {"name": row["name"], "unteamed": row["unteamed"]}
    return cast(SpendTotals, {**counted, **named, "lat_sum": real(row["lat_sum"])})


def _failed(row: dict[str, Any]) -> FailedRequest:
    return FailedRequest(
        request_id=row["request_id"],
        created_at=float(row["created_at"]),
        route=row["route"],
        final_tier=row["final_tier"],
        status=row["status"],
        error=row["error"],
        latency_ms=maybe(row["latency_ms"]),
        cost_pusd=whole(row["cost_pusd"]),
        api_key=row["api_key"],
        prompt=row["prompt"],
    )


def _attempt(row: dict[str, Any]) -> AttemptSummary:
    return AttemptSummary(
        request_id=row["request_id"],
        seq=whole(row["seq"]),
        deployment=row["deployment"],
        tier=row["tier"],
        called=bool(row["called"]),
        outcome=row["outcome"],
        trigger=row["trigger"],
        detail=row["detail"],
        status=row["status"],
        latency_ms=maybe(row["latency_ms"]),
        cost_pusd=whole(row["cost_pusd"]),
    )
