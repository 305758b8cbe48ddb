"""SQLite store: WAL mode, one connection, calls run in a worker thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tierwise.record import RequestRecord
from tierwise.store.base import Feedback, Store
from tierwise.store.migrations import MIGRATIONS
from tierwise.store.rows import Capture, attempt_rows, request_row
from tierwise.store.sql import MIGRATIONS_TABLE, Dialect
from tierwise.store.sql import SQLITE as SQL


class SQLiteStore(Store):
    dialect = Dialect.SQLITE

    def __init__(self, path: str | Path, capture: Capture | None = None) -> None:
        self.path = Path(path)
        self.capture = capture or Capture()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return f"sqlite:///{self.path}"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            _wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    async def _call(self, work: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                return work(self._connection(), *args)

        return await asyncio.to_thread(locked)

    async def migrate(self) -> None:
        await self._call(_migrate)

    async def record(self, records: Sequence[RequestRecord]) -> None:
        requests = [request_row(r, self.capture) for r in records]
        attempts = [row for r in records for row in attempt_rows(r)]
        await self._call(_write, requests, attempts)

    async def add_feedback(self, feedback: Feedback) -> str | None:
        found: str | None = await self._call(_feedback, feedback)
        return found

    async def _fetch(self, statement: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._call(_select, statement, tuple(params))
        return rows

    async def _run(self, statement: str, params: Sequence[Any]) -> None:
        await self._call(lambda conn: conn.execute(statement, tuple(params)))

    async def _run_then(
        self, statement: str, params: Sequence[Any], then: str, then_params: Sequence[Any]
    ) -> bool:
        changed: bool = await self._call(
            _both, (statement, tuple(params)), (then, tuple(then_params))
        )
        return changed

    async def prune(self, before: float) -> int:
        count: int = await self._call(_prune, before)
        return count

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(lambda conn: conn.close())
            self._conn = None


def _both(
    conn: sqlite3.Connection, first: tuple[str, tuple[Any, ...]], then: tuple[str, tuple[Any, ...]]
) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        changed = conn.execute(*first).rowcount > 0
        if changed:
            conn.execute(*then)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return changed


def _wal(conn: sqlite3.Connection, tries: int = 100) -> None:
    """Switch to WAL; the switch needs the file to itself and does not wait for a busy
    file (another process migrating), so it is retried."""
    for attempt in range(tries):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05)


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply each missing migration in its own write transaction, checking inside it,
    so processes starting together on one file apply each migration once."""
    conn.execute(MIGRATIONS_TABLE)
    for name, statements in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute(SQL.migration_done, (name,)).fetchone() is None:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(SQL.migration_applied, (name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _write(conn: sqlite3.Connection, requests: list[Any], attempts: list[Any]) -> None:
    conn.execute("BEGIN")
    try:
        conn.executemany(SQL.insert_request, requests)
        conn.executemany(SQL.insert_attempt, attempts)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _feedback(conn: sqlite3.Connection, fb: Feedback) -> str | None:
    row = conn.execute(SQL.exists, (fb.request_id,)).fetchone()
    row = row or conn.execute(SQL.newest_for_client_id, (fb.request_id,)).fetchone()
    if row is None:
        return None
    conn.execute(
        SQL.insert_feedback,
        (
            fb.feedback_id,
            row[0],
            fb.created_at,
            fb.score,
            fb.raw_score,
            fb.comment,
            fb.api_key,
        ),
    )
    return str(row[0])


def _select(
    conn: sqlite3.Connection, statement: str, params: tuple[Any, ...]
) -> list[dict[str, Any]]:
    cursor = conn.execute(statement, params)
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _prune(conn: sqlite3.Connection, before: float) -> int:
    count = len(conn.execute(SQL.old_ids, (before,)).fetchall())
    conn.execute("BEGIN")
    for statement in SQL.prune:
        conn.execute(statement, (before,))
    conn.execute("COMMIT")
    return count
