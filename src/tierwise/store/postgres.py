"""PostgreSQL store on asyncpg: a small pool, migrations under an advisory lock."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from tierwise.record import RequestRecord
from tierwise.store.base import Feedback, Store
from tierwise.store.migrations import MIGRATIONS
from tierwise.store.rows import Capture, attempt_rows, request_row
from tierwise.store.sql import MIGRATIONS_TABLE, Dialect
from tierwise.store.sql import POSTGRES as SQL

MIGRATION_LOCK = 7_221_901


class PostgresStore(Store):
    dialect = Dialect.POSTGRES

    def __init__(
        self,
        dsn: str,
        capture: Capture | None = None,
        *,
        schema: str | None = None,
        pool_size: int = 4,
    ) -> None:
        self.dsn, self.schema, self.pool_size = dsn, schema, pool_size
        self.capture = capture or Capture()
        self._pool: Any = None

    @property
    def location(self) -> str:
        parts = urlsplit(self.dsn)
        port = f":{parts.port}" if parts.port else ""
        schema = f"?schema={self.schema}" if self.schema else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}{schema}"

    async def _acquire_pool(self) -> Any:
        if self._pool is None:
            import asyncpg

            settings = {"search_path": self.schema} if self.schema else None
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, server_settings=settings
            )
        return self._pool

    async def migrate(self) -> None:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn:
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(MIGRATIONS_TABLE)
                done = {r["id"] for r in await conn.fetch("SELECT id FROM schema_migrations")}
                for name, statements in MIGRATIONS:
                    if name not in done:
                        await _apply(conn, name, statements)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def record(self, records: Sequence[RequestRecord]) -> None:
        requests = [request_row(r, self.capture) for r in records]
        attempts = [row for r in records for row in attempt_rows(r)]
        pool = await self._acquire_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(SQL.insert_request, requests)
            if attempts:
                await conn.executemany(SQL.insert_attempt, attempts)

    async def add_feedback(self, feedback: Feedback) -> str | None:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn:
            found = await conn.fetchval(SQL.exists, feedback.request_id)
            if found is None:
                found = await conn.fetchval(SQL.newest_for_client_id, feedback.request_id)
            if found is None:
                return None
            await conn.execute(
                SQL.insert_feedback,
                feedback.feedback_id,
                found,
                feedback.created_at,
                feedback.score,
                feedback.raw_score,
                feedback.comment,
                feedback.api_key,
            )
            return str(found)

    async def _fetch(self, statement: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn:
            rows = await conn.fetch(statement, *params)
        return [dict(row) for row in rows]

    async def _run(self, statement: str, params: Sequence[Any]) -> None:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn:
            await conn.execute(statement, *params)

    async def _run_then(
        self, statement: str, params: Sequence[Any], then: str, then_params: Sequence[Any]
    ) -> bool:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn, conn.transaction():
            status = await conn.execute(statement, *params)
            changed = not status.endswith(" 0")
            if changed:
                await conn.execute(then, *then_params)
        return changed

    async def prune(self, before: float) -> int:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn, conn.transaction():
            count = len(await conn.fetch(SQL.old_ids, before))
            for statement in SQL.prune:
                await conn.execute(statement, before)
        return count

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _apply(conn: Any, name: str, statements: list[str]) -> None:
    async with conn.transaction():
        for statement in statements:
            await conn.execute(statement)
        await conn.execute(SQL.migration_applied, name, time.time())
