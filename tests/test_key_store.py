"""Virtual keys in the store, on SQLite and PostgreSQL: only a digest of the secret
is kept, and each change is stored with its audit entry or not at all."""

from __future__ import annotations

import asyncio

import pytest

from tierwise.errors import RequestError
from tierwise.server.virtual_keys import KeySpec, create_key, revoke_key, rotate_key
from tierwise.store import Store
from tierwise.store.inspect import select


async def _table(store: Store, name: str) -> list[dict[str, object]]:
    return await select(store, f"SELECT * FROM {name}")


async def test_the_secret_is_stored_only_as_its_digest(store: Store) -> None:
    secret, _ = await create_key(store, KeySpec("ci", team="web"), "admin", 1.0)
    rotated = await rotate_key(store, "ci", "admin", 2.0)
    stored = [str(v) for r in await _table(store, "virtual_keys") for v in r.values()]
    stored += [str(v) for r in await _table(store, "key_events") for v in r.values()]
    assert secret not in " ".join(stored) and rotated not in " ".join(stored)
    [row] = await _table(store, "virtual_keys")
    assert len(str(row["key_sha256"])) == 64 and rotated.startswith(str(row["prefix"]))


async def test_each_change_is_stored_with_its_audit_entry_or_not_at_all(store: Store) -> None:
    await create_key(store, KeySpec("ci"), "admin", 1.0)
    with pytest.raises(RequestError) as taken:
        await create_key(store, KeySpec("ci", team="other"), "mallory", 2.0)
    assert taken.value.status == 409
    await revoke_key(store, "ci", "admin", 3.0)
    for again in (revoke_key, rotate_key):
        with pytest.raises(RequestError) as gone:
            await again(store, "ci", "mallory", 4.0)
        assert gone.value.status == 404
    events = await store.key_events("ci")
    assert [(e["action"], e["actor"]) for e in events] == [
        ("revoke", "admin"),
        ("create", "admin"),
    ]
    [row] = await _table(store, "virtual_keys")
    assert row["team"] is None and row["revoked_at"] == 3.0


async def test_concurrent_revokes_store_one_revocation(store: Store) -> None:
    """Replicas revoking one key at once: one succeeds, one audit entry."""
    await create_key(store, KeySpec("ci"), "admin", 1.0)
    outcomes = await asyncio.gather(
        *(revoke_key(store, "ci", f"admin-{i}", 2.0) for i in range(6)), return_exceptions=True
    )
    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, RequestError) for o in outcomes if o is not None)
    assert [e["action"] for e in await store.key_events("ci")] == ["revoke", "create"]
