"""Named reads and writes of virtual API keys and their audit log. A key is kept as
the SHA-256 digest of its secret and a short visible prefix; the secret itself is
never stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from tierwise.store.sql import Engine, insert, maybe

KEY_COLUMNS = (
    "name",
    "key_sha256",
    "prefix",
    "team",
    "key_user",
    "routes",
    "models",
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "created_at",
    "updated_at",
    "revoked_at",
)
KEY_EVENT_COLUMNS = ("event_id", "created_at", "name", "action", "actor", "detail")
SELECT_KEYS = f"SELECT {', '.join(KEY_COLUMNS)} FROM virtual_keys"


class VirtualKeyRow(TypedDict):
    """One virtual key: `routes` and `models` are JSON lists (None: any),
    `budget_usd` a decimal string (None: no budget of its own)."""

    name: str
    key_sha256: str
    prefix: str
    team: str | None
    key_user: str | None
    routes: str | None
    models: str | None
    budget_usd: str | None
    budget_period: str | None
    rpm: int | None
    tpm: int | None
    created_at: float
    updated_at: float
    revoked_at: float | None


class KeyEventRow(TypedDict):
    """An audit entry: a key created, revoked or rotated, by whom (`detail`: JSON)."""

    event_id: str
    created_at: float
    name: str
    action: str
    actor: str | None
    detail: str | None


def _values(row: Mapping[str, object], columns: Sequence[str]) -> list[object]:
    return [row[c] for c in columns]


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _key(row: dict[str, Any]) -> VirtualKeyRow:
    return VirtualKeyRow(
        name=str(row["name"]),
        key_sha256=str(row["key_sha256"]),
        prefix=str(row["prefix"]),
        team=row["team"],
        key_user=row["key_user"],
        routes=row["routes"],
        models=row["models"],
        budget_usd=row["budget_usd"],
        budget_period=row["budget_period"],
        rpm=_count(row["rpm"]),
        tpm=_count(row["tpm"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        revoked_at=maybe(row["revoked_at"]),
    )


def _event(row: dict[str, Any]) -> KeyEventRow:
    return KeyEventRow(
        event_id=str(row["event_id"]),
        created_at=float(row["created_at"]),
        name=str(row["name"]),
        action=str(row["action"]),
        actor=row["actor"],
        detail=row["detail"],
    )


class VirtualKeys(Engine):
    async def add_virtual_key(self, row: VirtualKeyRow, event: KeyEventRow) -> bool:
        """Store a new key and its audit entry together; False when the name or the
        digest is taken (nothing stored)."""
        statement = insert(self.dialect, "virtual_keys", KEY_COLUMNS, skip_known=True)
        return await self._with_event(statement, _values(row, KEY_COLUMNS), event)

    async def _with_event(self, statement: str, params: Sequence[Any], event: KeyEventRow) -> bool:
        audit = insert(self.dialect, "key_events", KEY_EVENT_COLUMNS, skip_known=True)
        return await self._run_then(statement, params, audit, _values(event, KEY_EVENT_COLUMNS))

    async def virtual_key(self, name: str) -> VirtualKeyRow | None:
        q = self.bind()
        rows = await self._fetch(f"{SELECT_KEYS} WHERE name = {q(name)}", q.values)
        return _key(rows[0]) if rows else None

    async def virtual_key_by_hash(self, key_sha256: str) -> VirtualKeyRow | None:
        """The live (not revoked) key whose secret has this hex digest."""
        q = self.bind()
        statement = f"{SELECT_KEYS} WHERE key_sha256 = {q(key_sha256)} AND revoked_at IS NULL"
        rows = await self._fetch(statement, q.values)
        return _key(rows[0]) if rows else None

    async def virtual_keys(self, *, revoked: bool = False) -> list[VirtualKeyRow]:
        """Every key by name; revoked ones only when asked."""
        where = "" if revoked else " WHERE revoked_at IS NULL"
        return [_key(r) for r in await self._fetch(f"{SELECT_KEYS}{where} ORDER BY name", [])]

    async def revoke_virtual_key(self, name: str, at: float, event: KeyEventRow) -> bool:
        """Revoke a live key, with its audit entry; False when there is none by that
        name."""
        q = self.bind()
        statement = (
            f"UPDATE virtual_keys SET revoked_at = {q(at)}, updated_at = {q(at)} "
            f"WHERE name = {q(name)} AND revoked_at IS NULL"
        )
        return await self._with_event(statement, q.values, event)

    async def rotate_virtual_key(
        self, name: str, key_sha256: str, prefix: str, at: float, event: KeyEventRow
    ) -> bool:
        """Give a live key a new secret digest (the old secret stops matching), with
        its audit entry; False when there is no live key by that name."""
        q = self.bind()
        statement = (
            f"UPDATE virtual_keys SET key_sha256 = {q(key_sha256)}, prefix = {q(prefix)}, "
            f"updated_at = {q(at)} WHERE name = {q(name)} AND revoked_at IS NULL"
        )
        return await self._with_event(statement, q.values, event)

    async def key_events(self, name: str | None = None, limit: int = 200) -> list[KeyEventRow]:
        """The key audit log, newest first, optionally for one key."""
        q = self.bind()
        where = f" WHERE name = {q(name)}" if name else ""
        statement = (
            f"SELECT {', '.join(KEY_EVENT_COLUMNS)} FROM key_events{where} "
            f"ORDER BY created_at DESC, event_id DESC LIMIT {q(int(limit))}"
        )
        return [_event(r) for r in await self._fetch(statement, q.values)]
