"""The request and decision log: SQLite (default) or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from tierwise.store.base import Feedback, Store
from tierwise.store.rows import Capture, from_pusd, to_pusd
from tierwise.store.writer import RecordWriter

__all__ = [
    "Capture",
    "Feedback",
    "RecordWriter",
    "Store",
    "from_pusd",
    "migrated",
    "open_store",
    "to_pusd",
]


def open_store(url: str, capture: Capture | None = None) -> Store:
    """`sqlite:///path/to.db` (or a plain path) or `postgresql://...`; a
    PostgreSQL URL may name a schema with `?schema=NAME`."""
    if url.startswith(("postgresql://", "postgres://")):
        from tierwise.store.postgres import PostgresStore

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        schema = query.pop("schema", [None])[0]
        dsn = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
        return PostgresStore(dsn, capture, schema=schema)
    from tierwise.store.sqlite import SQLiteStore

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SQLiteStore(Path(path).expanduser(), capture)


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Store]:
    """The store at `url`, migrated, closed when the block ends (commands and reports)."""
    store = open_store(url)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
