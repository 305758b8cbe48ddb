"""The request-log store interface and the feedback it keeps."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from tierwise.record import RequestRecord
from tierwise.store.experiments import ExperimentStats
from tierwise.store.keys import VirtualKeys
from tierwise.store.outcomes import OutcomeReads
from tierwise.store.reports import ReportReads
from tierwise.store.tables import Tables


@dataclass(frozen=True, slots=True)
class Feedback:
    """A user's verdict on one request: `score` in [0, 1]; `raw_score` as given."""

    feedback_id: str
    request_id: str
    created_at: float
    score: float
    raw_score: str
    comment: str | None = None
    api_key: str | None = None


class Store(Tables, ExperimentStats, ReportReads, OutcomeReads, VirtualKeys):
    """Append-only request log, with the audit, experiment and judge tables beside it.
    Every read and write is a named method; the SQL of each, for SQLite and for
    PostgreSQL, stays in this package."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store is, without credentials (for log lines)."""

    @abstractmethod
    async def migrate(self) -> None: ...

    @abstractmethod
    async def record(self, records: Sequence[RequestRecord]) -> None: ...

    @abstractmethod
    async def add_feedback(self, feedback: Feedback) -> str | None:
        """Store `feedback` under the request whose gateway id is `feedback.request_id`,
        else under the newest request sent with that client `x-request-id`; the gateway
        id it was stored under, or None when neither is known."""

    @abstractmethod
    async def prune(self, before: float) -> int:
        """Delete requests (and their attempts and feedback) older than `before`."""

    @abstractmethod
    async def close(self) -> None: ...
