"""Named reads of what happened to each request since a time (its prompt, every
attempt, the judge's verdict and the users' feedback), the learned routers the
gateway stores so that every replica can load them, and the decisions of a shadow
router beside each route's live one."""

from __future__ import annotations

from typing import Any, TypedDict

from tierwise.store.sql import Bind, Engine, insert, maybe, whole

LEARNED_COLUMNS = ("router_id", "created_at", "route", "models", "body", "summary")
SHADOW_COLUMNS = ("request_id", "router_id", "target", "created_at")
OUTCOME_LIMIT = 200_000
PROPENSITY = "decision_propensity"


class OutcomeRequest(TypedDict):
    """A logged request with a captured prompt; `propensity` is the logged chance of
    its routing decision, None when the log does not keep one."""

    request_id: str
    created_at: float
    route: str
    prompt: str
    router: str | None
    decision_target: str | None
    final_model: str | None
    status: str
    propensity: float | None


class OutcomeAttempt(TypedDict):
    """One attempt of such a request: `outcome` is ok, rejected (a failed check or
    low confidence, with its `trigger`), error, skipped or cancelled."""

    request_id: str
    seq: int
    tier: str | None
    model: str | None
    called: bool
    outcome: str
    trigger: str | None
    cost_pusd: int


class LearnedRouterRow(TypedDict):
    """A trained router file (`body`: base64 of its bytes) for `route`, with the
    tier each of its models maps to (`models`: JSON) and a JSON `summary`."""

    router_id: str
    created_at: float
    route: str
    models: str
    body: str
    summary: str | None


class ShadowPair(TypedDict):
    """A logged request of a route that a shadow router decided on: the tier the
    shadow picked and the one the live router picked (None when not logged)."""

    request_id: str
    shadow_target: str
    live_target: str | None


def _window(q: Bind, since: float, route: str | None, alias: str = "r") -> str:
    where = f"{alias}.created_at >= {q(since)} AND {alias}.prompt IS NOT NULL"
    return where + (f" AND {alias}.route = {q(route)}" if route else "")


class OutcomeReads(Engine):
    async def outcome_requests(
        self, since: float, route: str | None = None, limit: int = OUTCOME_LIMIT
    ) -> list[OutcomeRequest]:
        """Requests with a prompt started at or after `since`, oldest first."""
        q = self.bind()
        statement = (
            f"SELECT * FROM requests r WHERE {_window(q, since, route)} "
            f"ORDER BY r.created_at, r.request_id LIMIT {q(int(limit))}"
        )
        return [_request(r) for r in await self._fetch(statement, q.values)]

    async def outcome_attempts(
        self, since: float, route: str | None = None, limit: int = OUTCOME_LIMIT
    ) -> list[OutcomeAttempt]:
        """Every attempt of those requests, in order within each request."""
        q = self.bind()
        statement = f"""SELECT a.request_id AS request_id, a.seq AS seq, a.tier AS tier,
            a.model AS model, a.called AS called, a.outcome AS outcome,
            a.trigger AS trigger, a.cost_pusd AS cost_pusd
            FROM attempts a JOIN requests r ON r.request_id = a.request_id
            WHERE {_window(q, since, route)}
            ORDER BY a.request_id, a.seq LIMIT {q(int(limit))}"""
        return [_attempt(r) for r in await self._fetch(statement, q.values)]

    async def outcome_verdicts(self, since: float, route: str | None = None) -> dict[str, float]:
        """Per request with a judge's score, that score."""
        q = self.bind()
        statement = f"""SELECT j.request_id AS request_id, j.score AS score
            FROM judgments j JOIN requests r ON r.request_id = j.request_id
            WHERE j.score IS NOT NULL AND {_window(q, since, route)}"""
        rows = await self._fetch(statement, q.values)
        return {str(r["request_id"]): float(r["score"]) for r in rows}

    async def outcome_feedback(self, since: float, route: str | None = None) -> dict[str, float]:
        """Per request with feedback, its mean feedback score."""
        q = self.bind()
        statement = f"""SELECT f.request_id AS request_id, AVG(f.score) AS score
            FROM feedback f JOIN requests r ON r.request_id = f.request_id
            WHERE {_window(q, since, route)} GROUP BY f.request_id"""
        rows = await self._fetch(statement, q.values)
        return {str(r["request_id"]): float(r["score"]) for r in rows}

    async def add_learned_router(self, row: LearnedRouterRow) -> None:
        statement = insert(self.dialect, "learned_routers", LEARNED_COLUMNS, skip_known=True)
        values = (
            row["router_id"],
            row["created_at"],
            row["route"],
            row["models"],
            row["body"],
            row["summary"],
        )
        await self._run(statement, values)

    async def learned_router(self, router_id: str) -> LearnedRouterRow | None:
        q = self.bind()
        statement = (
            f"SELECT {', '.join(LEARNED_COLUMNS)} FROM learned_routers "
            f"WHERE router_id = {q(router_id)}"
        )
        rows = await self._fetch(statement, q.values)
        return _learned(rows[0]) if rows else None

    async def add_shadow_decisions(self, rows: list[tuple[str, str, str, float]]) -> None:
        """Keep shadow decisions (request id, router id, target, time); a second one
        for the same request and router is ignored."""
        statement = insert(self.dialect, "shadow_decisions", SHADOW_COLUMNS, skip_known=True)
        for row in rows:
            await self._run(statement, row)

    async def shadow_pairs(self, route: str, router_id: str, since: float) -> list[ShadowPair]:
        """`router_id`'s decisions on `route`'s logged requests since `since`, with
        the live decision of each, oldest first."""
        q = self.bind()
        statement = f"""SELECT s.request_id AS request_id, s.target AS shadow_target,
            r.decision_target AS live_target
            FROM shadow_decisions s JOIN requests r ON r.request_id = s.request_id
            WHERE s.router_id = {q(router_id)} AND r.route = {q(route)}
            AND r.created_at >= {q(since)}
            ORDER BY r.created_at, r.request_id"""
        return [
            ShadowPair(
                request_id=str(r["request_id"]),
                shadow_target=str(r["shadow_target"]),
                live_target=r["live_target"],
            )
            for r in await self._fetch(statement, q.values)
        ]


def _request(row: dict[str, Any]) -> OutcomeRequest:
    return OutcomeRequest(
        request_id=str(row["request_id"]),
        created_at=float(row["created_at"]),
        route=str(row["route"]),
        prompt=str(row["prompt"]),
        router=row.get("router"),
        decision_target=row.get("decision_target"),
        final_model=row.get("final_model"),
        status=str(row["status"]),
        propensity=maybe(row.get(PROPENSITY)),
    )


def _attempt(row: dict[str, Any]) -> OutcomeAttempt:
    return OutcomeAttempt(
        request_id=str(row["request_id"]),
        seq=whole(row["seq"]),
        tier=row["tier"],
        model=row["model"],
        called=bool(row["called"]),
        outcome=str(row["outcome"]),
        trigger=row["trigger"],
        cost_pusd=whole(row["cost_pusd"]),
    )


def _learned(row: dict[str, Any]) -> LearnedRouterRow:
    return LearnedRouterRow(
        router_id=str(row["router_id"]),
        created_at=float(row["created_at"]),
        route=str(row["route"]),
        models=str(row["models"]),
        body=str(row["body"]),
        summary=row["summary"],
    )
