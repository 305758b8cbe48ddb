"""Named reads and writes of the threshold audit log, the judge's verdicts, the
experiment events, and the request log as drift checks and replays read it."""

from __future__ import annotations

from typing import Any, TypedDict

from tierwise.store.sql import Engine, insert, maybe, whole

CALIBRATION_COLUMNS = (
    "calibration_id",
    "created_at",
    "route",
    "parameter",
    "old_value",
    "new_value",
    "applied",
    "evidence",
    "actor",
)
JUDGMENT_COLUMNS = (
    "request_id",
    "created_at",
    "experiment",
    "variant",
    "score",
    "cost_pusd",
    "judge",
    "detail",
)
EVENT_COLUMNS = ("experiment", "created_at", "action", "definition", "serving", "reason", "actor")
SELECT_CALIBRATIONS = f"SELECT {', '.join(CALIBRATION_COLUMNS)} FROM calibrations"
FEEDBACK_MEANS = "SELECT request_id, AVG(score) AS s FROM feedback GROUP BY request_id"
DRIFT_LIMIT = 20_000


class CalibrationRow(TypedDict):
    """One proposed or applied threshold change; `evidence` is JSON text."""

    calibration_id: str
    created_at: float
    route: str
    parameter: str
    old_value: float | None
    new_value: float
    applied: bool
    evidence: str
    actor: str | None


class JudgmentRow(TypedDict):
    request_id: str
    created_at: float
    experiment: str | None
    variant: str | None
    score: float | None
    cost_pusd: int
    judge: str | None
    detail: str | None


class EventRow(TypedDict):
    """An experiment's lifecycle event; `definition` is the experiment as JSON text."""

    experiment: str
    created_at: float
    action: str
    definition: str | None
    serving: str | None
    reason: str | None
    actor: str | None


class DriftRow(TypedDict):
    """A routed request as drift checks see it: the router's choice and scores (JSON
    text), the tier that served it, its prompt sketch (JSON text), its mean feedback."""

    target: str | None
    scores: str | None
    tier: str | None
    sketch: str | None
    feedback: float | None


class ServedRequest(TypedDict):
    """`decision_propensity` is None when not logged (no router, or an older log);
    `router` names the router that decided (`explore:shadow` for a shadow call)."""

    request_id: str
    route: str
    final_model: str
    cost_pusd: int
    prompt: str | None
    variant: str | None
    router: str | None
    decision_propensity: float | None


class Tables(Engine):
    async def add_calibration(self, row: CalibrationRow) -> None:
        statement = insert(self.dialect, "calibrations", CALIBRATION_COLUMNS, skip_known=False)
        values = (
            row["calibration_id"],
            row["created_at"],
            row["route"],
            row["parameter"],
            row["old_value"],
            row["new_value"],
            int(row["applied"]),
            row["evidence"],
            row["actor"],
        )
        await self._run(statement, values)

    async def calibrations(
        self, route: str | None = None, limit: int = 200
    ) -> list[CalibrationRow]:
        """Newest first, of one route or of all."""
        q = self.bind()
        where = f" WHERE route = {q(route)}" if route else ""
        statement = f"{SELECT_CALIBRATIONS}{where} ORDER BY created_at DESC LIMIT {q(int(limit))}"
        return [_calibration(r) for r in await self._fetch(statement, q.values)]

    async def applied_calibrations(self) -> list[CalibrationRow]:
        """The applied entries of every route, oldest first."""
        statement = f"{SELECT_CALIBRATIONS} WHERE applied = 1 ORDER BY created_at"
        return [_calibration(r) for r in await self._fetch(statement, ())]

    async def add_judgment(self, row: JudgmentRow) -> None:
        """Keep a verdict; a second one for the same request is ignored."""
        statement = insert(self.dialect, "judgments", JUDGMENT_COLUMNS, skip_known=True)
        values = (
            row["request_id"],
            row["created_at"],
            row["experiment"],
            row["variant"],
            row["score"],
            row["cost_pusd"],
            row["judge"],
            row["detail"],
        )
        await self._run(statement, values)

    async def add_experiment_event(self, row: EventRow) -> None:
        statement = insert(self.dialect, "experiment_events", EVENT_COLUMNS, skip_known=False)
        values = (
            row["experiment"],
            row["created_at"],
            row["action"],
            row["definition"],
            row["serving"],
            row["reason"],
            row["actor"],
        )
        await self._run(statement, values)

    async def experiment_events(self, after: float = 0.0) -> list[EventRow]:
        """Events newer than `after`, oldest first."""
        q = self.bind()
        statement = (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM experiment_events "
            f"WHERE created_at > {q(after)} ORDER BY created_at"
        )
        return [_event(r) for r in await self._fetch(statement, q.values)]

    async def drift_window(
        self, route: str, router: str, start: float, end: float, limit: int = DRIFT_LIMIT
    ) -> list[DriftRow]:
        """The route's requests decided by `router` in [start, end), newest first."""
        q = self.bind()
        statement = f"""SELECT r.decision_target AS target, r.decision_scores AS scores,
            r.final_tier AS tier, r.prompt_sketch AS sketch, f.s AS feedback
            FROM requests r LEFT JOIN ({FEEDBACK_MEANS}) f ON f.request_id = r.request_id
            WHERE r.route = {q(route)} AND r.router = {q(router)}
            AND r.created_at >= {q(start)} AND r.created_at < {q(end)}
            ORDER BY r.created_at DESC LIMIT {q(int(limit))}"""
        return [_drift(r) for r in await self._fetch(statement, q.values)]

    async def first_request_at(self, route: str, router: str) -> float | None:
        """When the route's oldest request decided by `router` started."""
        q = self.bind()
        statement = (
            "SELECT MIN(created_at) AS first FROM requests "
            f"WHERE route = {q(route)} AND router = {q(router)}"
        )
        rows = await self._fetch(statement, q.values)
        return maybe(rows[0]["first"]) if rows else None

    async def served_requests(self, route: str | None = None) -> list[ServedRequest]:
        """Requests a model answered, of one route or all, oldest first."""
        q = self.bind()
        where = f" AND route = {q(route)}" if route else ""
        statement = (
            "SELECT * FROM requests "
            f"WHERE final_model IS NOT NULL{where} ORDER BY created_at, request_id"
        )
        return [_served(r) for r in await self._fetch(statement, q.values)]

    async def count_requests(self, route: str | None = None) -> int:
        """How many requests the log holds, of one route or all."""
        q = self.bind()
        where = f" WHERE route = {q(route)}" if route else ""
        rows = await self._fetch(f"SELECT COUNT(*) AS n FROM requests{where}", q.values)
        return whole(rows[0]["n"])

    async def mean_feedback(self) -> dict[str, float]:
        """Per request id with feedback, its mean score."""
        rows = await self._fetch(FEEDBACK_MEANS, ())
        return {str(r["request_id"]): float(r["s"]) for r in rows}


def _calibration(row: dict[str, Any]) -> CalibrationRow:
    return CalibrationRow(
        calibration_id=row["calibration_id"],
        created_at=float(row["created_at"]),
        route=row["route"],
        parameter=row["parameter"],
        old_value=maybe(row["old_value"]),
        new_value=float(row["new_value"]),
        applied=bool(row["applied"]),
        evidence=row["evidence"],
        actor=row["actor"],
    )


def _event(row: dict[str, Any]) -> EventRow:
    return EventRow(
        experiment=row["experiment"],
        created_at=float(row["created_at"]),
        action=row["action"],
        definition=row["definition"],
        serving=row["serving"],
        reason=row["reason"],
        actor=row["actor"],
    )


def _drift(row: dict[str, Any]) -> DriftRow:
    return DriftRow(
        target=row["target"],
        scores=row["scores"],
        tier=row["tier"],
        sketch=row["sketch"],
        feedback=maybe(row["feedback"]),
    )


def _served(row: dict[str, Any]) -> ServedRequest:
    return ServedRequest(
        request_id=row["request_id"],
        route=row["route"],
        final_model=row["final_model"],
        cost_pusd=whole(row["cost_pusd"]),
        prompt=row["prompt"],
        variant=row["variant"],
        router=row.get("router"),
        decision_propensity=maybe(row.get("decision_propensity")),
    )
