"""Placeholders per engine, and the statements every store runs.

Statements are written once and get their placeholders from the engine's `Dialect`
as they are built (`?1` for SQLite, `$1` for PostgreSQL): SQL text is never
rewritten after the fact, so a `?` in a literal or a comment cannot be taken for a
parameter, and numbered placeholders do not depend on the order of the text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import Enum
from typing import Any

from tierwise.store.rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS

FEEDBACK_COLUMNS = (
    "feedback_id",
    "request_id",
    "created_at",
    "score",
    "raw_score",
    "comment",
    "api_key",
)
MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(id TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)
PRUNED = ("attempts", "feedback")


class Dialect(Enum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"

    def mark(self, number: int) -> str:
        """The placeholder of the `number`th parameter (from 1)."""
        return f"?{number}" if self is Dialect.SQLITE else f"${number}"


class Bind:
    """The parameters of one statement: each call keeps a value and returns its
    placeholder, so a value and its mark cannot drift apart."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return self.dialect.mark(len(self.values))

    def many(self, values: Sequence[Any]) -> str:
        """A comma-separated list of placeholders, for `IN (...)`."""
        return ", ".join(self(v) for v in values)


class Engine(ABC):
    """Runs one statement built with `bind()`; what the named reads and writes of a
    store stand on."""

    dialect: Dialect

    def bind(self) -> Bind:
        return Bind(self.dialect)

    @abstractmethod
    async def _fetch(self, statement: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of one read, as column-name dicts."""

    @abstractmethod
    async def _run(self, statement: str, params: Sequence[Any]) -> None:
        """One write statement, committed on return."""

    @abstractmethod
    async def _run_then(
        self, statement: str, params: Sequence[Any], then: str, then_params: Sequence[Any]
    ) -> bool:
        """`statement`, and `then` only when it changed a row, in one transaction
        (a change and its audit entry are stored together or not at all); whether
        the first changed a row."""


def insert(dialect: Dialect, table: str, columns: Sequence[str], *, skip_known: bool) -> str:
    """An insert of one row of `columns`; with `skip_known`, a row whose key is
    already stored is left as it is."""
    marks = ", ".join(dialect.mark(i) for i in range(1, len(columns) + 1))
    known = " ON CONFLICT DO NOTHING" if skip_known else ""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){known}"


class Core:
    """The request log's own statements in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        before = dialect.mark(1)
        self.insert_request = insert(dialect, "requests", REQUEST_COLUMNS, skip_known=True)
        self.insert_attempt = insert(dialect, "attempts", ATTEMPT_COLUMNS, skip_known=True)
        self.insert_feedback = insert(dialect, "feedback", FEEDBACK_COLUMNS, skip_known=True)
        self.exists = f"SELECT request_id FROM requests WHERE request_id = {before}"
        self.newest_for_client_id = (
            f"SELECT request_id FROM requests WHERE client_request_id = {before} "
            "ORDER BY created_at DESC, request_id DESC LIMIT 1"
        )
        self.old_ids = f"SELECT request_id FROM requests WHERE created_at < {before}"
        self.prune = [
            *(f"DELETE FROM {t} WHERE request_id IN ({self.old_ids})" for t in PRUNED),
            f"DELETE FROM judgments WHERE created_at < {before}",
            f"DELETE FROM requests WHERE created_at < {before}",
        ]
        self.migration_done = f"SELECT 1 FROM schema_migrations WHERE id = {before}"
        self.migration_applied = (
            f"INSERT INTO schema_migrations VALUES ({before}, {dialect.mark(2)})"
        )


SQLITE = Core(Dialect.SQLITE)
POSTGRES = Core(Dialect.POSTGRES)


def real(value: Any) -> float:
    """A number as either engine returns it (int, float, Decimal; NULL as 0)."""
    return float(value) if value is not None else 0.0


def whole(value: Any) -> int:
    """A count or an exact sum as either engine returns it (NULL as 0)."""
    return int(value) if value is not None else 0


def maybe(value: Any) -> float | None:
    return None if value is None else float(value)
