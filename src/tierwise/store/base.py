"""The request-log store interface and the feedback it keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tierwise.record import RequestRecord


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


class Store(Protocol):
    """Append-only request log. SQL passed to `query` uses `?` placeholders and
    the portable subset of SQL that SQLite and PostgreSQL share."""

    @property
    def location(self) -> str:
        """Where the store is, without credentials (for log lines)."""
        ...

    async def migrate(self) -> None: ...

    async def record(self, records: Sequence[RequestRecord]) -> None: ...

    async def add_feedback(self, feedback: Feedback) -> str | None:
        """Store `feedback` under the request whose gateway id is `feedback.request_id`,
        else under the newest request sent with that client `x-request-id`; the gateway
        id it was stored under, or None when neither is known."""
        ...

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement (audit and experiment tables), committed on return."""
        ...

    async def prune(self, before: float) -> int:
        """Delete requests (and their attempts and feedback) older than `before`."""
        ...

    async def close(self) -> None: ...
