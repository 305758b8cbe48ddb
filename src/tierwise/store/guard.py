"""The request store as the parts of a running server that read it see it (feedback,
the dashboard, the admin API, the experiment monitor): a 409 when the log is off, a
503 while the store is unreachable, and never a 500 for an outage that begins during
a call. One outage is logged once, by the writer."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tierwise.errors import RequestError
from tierwise.record import RequestRecord
from tierwise.store.base import Feedback, Store
from tierwise.store.tables import JudgmentRow
from tierwise.store.writer import RecordWriter

log = logging.getLogger("tierwise.store")


class StoreUnavailableError(RequestError):
    """The request store cannot be reached now: a 503 in the route's wire format."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"the request store is unreachable, so {what} is unavailable for now; answers "
            "are still served and their records are written when the store returns",
            status=503,
        )


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means a store cannot be reached or opened now (refused, reset,
    timed out, shut down, a file that cannot be opened), not a bad statement."""
    if isinstance(exc, OSError | sqlite3.OperationalError):
        return True
    try:
        import asyncpg
    except ImportError:
        return False
    outages = (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.OperatorInterventionError,
        asyncpg.InsufficientResourcesError,
    )
    return isinstance(exc, outages)


async def keep_judgment(store: Store, row: JudgmentRow, what: str) -> None:
    """Add `row` to `store`'s judgments; an unreachable store loses it with a
    warning naming `what`, any other failure is raised."""
    try:
        await store.add_judgment(row)
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        log.warning(
            "%s for request %s not stored: the request store is unreachable",
            what,
            row["request_id"],
        )


def guarded_store(writer: RecordWriter | None, what: str) -> GuardedStore:
    """The store for `what` (named in the messages); raises the 409 (log off) or the
    503 (store known to be down) at once."""
    if writer is None:
        raise RequestError(
            f"the request store is off (store.enabled: false); {what} needs it", status=409
        )
    if not writer.available:
        raise StoreUnavailableError(what)
    return GuardedStore(writer, what)


class GuardedStore(Store):
    """A `Store` that refuses calls while the writer knows the store is down, and
    turns an outage met during a call into `StoreUnavailableError`, marking it for
    the writer, which keeps trying the store and logs when it answers again."""

    def __init__(self, writer: RecordWriter, what: str) -> None:
        self.writer, self.what, self._store = writer, what, writer.store
        self.dialect = writer.store.dialect

    @property
    def location(self) -> str:
        return self._store.location

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if not self.writer.available:
            raise StoreUnavailableError(self.what)
        try:
            yield
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            self.writer.note_failure(exc)
            raise StoreUnavailableError(self.what) from None

    async def migrate(self) -> None:
        with self._guard():
            await self._store.migrate()

    async def record(self, records: Sequence[RequestRecord]) -> None:
        with self._guard():
            await self._store.record(records)

    async def add_feedback(self, feedback: Feedback) -> str | None:
        with self._guard():
            return await self._store.add_feedback(feedback)

    async def _fetch(self, statement: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self._guard():
            return await self._store._fetch(statement, params)

    async def _run(self, statement: str, params: Sequence[Any]) -> None:
        with self._guard():
            await self._store._run(statement, params)

    async def _run_then(
        self, statement: str, params: Sequence[Any], then: str, then_params: Sequence[Any]
    ) -> bool:
        with self._guard():
            return await self._store._run_then(statement, params, then, then_params)

    async def prune(self, before: float) -> int:
        with self._guard():
            return await self._store.prune(before)

    async def close(self) -> None:
        await self._store.close()
