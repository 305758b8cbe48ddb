"""Ad-hoc reads of a store's tables, for tests and debugging sessions. The project's
code reads and writes the store only through its named methods."""

from __future__ import annotations

from typing import Any

from tierwise.store.base import Store


async def select(store: Store, statement: str, *params: Any) -> list[dict[str, Any]]:
    """The rows of `statement`, whose `{}` marks take `params` in order, on either
    engine (write a literal brace as `{{`)."""
    q = store.bind()
    return await store._fetch(statement.format(*(q(p) for p in params)), q.values)
