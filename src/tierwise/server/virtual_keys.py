"""Virtual API keys: created, listed, revoked and rotated in the store (by the admin
API or the CLI), and refreshed from it into every replica's key ring.

A key's secret (`tw-...`) is returned once, on create and on rotate; the store keeps
its SHA-256 digest and a short visible prefix. Every change is written to the key
audit log (`key_events`) with its actor and time, never with a secret."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from tierwise.errors import RequestError
from tierwise.server.auth import ApiKey, KeyRing
from tierwise.server.key_limits import KeyLimits
from tierwise.store.keys import KeyEventRow, VirtualKeyRow, VirtualKeys

log = logging.getLogger("tierwise.server")
SECRET_PREFIX = "tw-"
VISIBLE_CHARS = 8
PERIODS = ("minute", "hour", "day", "month")
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key may do: None leaves a limit unset (routes/models: any)."""

    name: str
    team: str | None = None
    user: str | None = None
    routes: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    budget_usd: Decimal | None = None
    budget_period: str = "day"
    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 100 or not set(self.name) <= NAME_CHARS:
            raise RequestError("name must be 1-100 letters, digits, '-', '_' or '.'", param="name")
        if self.budget_usd is not None and self.budget_usd <= 0:
            raise RequestError("budget_usd must be more than 0", param="budget_usd")
        if self.budget_period not in PERIODS:
            raise RequestError(f"budget_period must be one of {PERIODS}", param="budget_period")
        for field, value in (("rpm", self.rpm), ("tpm", self.tpm)):
            if value is not None and value < 1:
                raise RequestError(f"{field} must be at least 1", param=field)


def spec_from_body(body: Any) -> KeySpec:
    """A KeySpec from an admin API body; RequestError names the bad field."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise RequestError("body must be an object with a 'name'", param="name")
    known = set(KeySpec.__dataclass_fields__)
    if unknown := sorted(set(body) - known):
        raise RequestError(f"unknown fields: {unknown}", param=unknown[0])
    return KeySpec(
        name=body["name"],
        team=_text(body, "team"),
        user=_text(body, "user"),
        routes=_names(body, "routes"),
        models=_names(body, "models"),
        budget_usd=parse_usd(body.get("budget_usd")),
        budget_period=str(body.get("budget_period") or "day"),
        rpm=_whole(body, "rpm"),
        tpm=_whole(body, "tpm"),
    )


def _text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{field} must be a string", param=field)
    return value


def _names(body: dict[str, Any], field: str) -> tuple[str, ...] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{field} must be a list of names", param=field)
    return tuple(value)


def _whole(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise RequestError(f"{field} must be a whole number", param=field)
    return value


def parse_usd(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise RequestError("budget_usd must be a number", param="budget_usd") from None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hex_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _event(name: str, action: str, actor: str, now: float, detail: Any = None) -> KeyEventRow:
    text = orjson.dumps(detail).decode() if detail is not None else None
    return KeyEventRow(
        event_id=os.urandom(12).hex(),
        created_at=now,
        name=name,
        action=action,
        actor=actor,
        detail=text,
    )


def _row(spec: KeySpec, secret: str, now: float) -> VirtualKeyRow:
    def listed(names: tuple[str, ...] | None) -> str | None:
        return None if names is None else orjson.dumps(list(names)).decode()

    return VirtualKeyRow(
        name=spec.name,
        key_sha256=hex_digest(secret),
        prefix=secret[:VISIBLE_CHARS],
        team=spec.team,
        key_user=spec.user,
        routes=listed(spec.routes),
        models=listed(spec.models),
        budget_usd=None if spec.budget_usd is None else str(spec.budget_usd),
        budget_period=spec.budget_period if spec.budget_usd is not None else None,
        rpm=spec.rpm,
        tpm=spec.tpm,
        created_at=now,
        updated_at=now,
        revoked_at=None,
    )


async def create_key(
    store: VirtualKeys, spec: KeySpec, actor: str, now: float, taken: Collection[str] = ()
) -> tuple[str, dict[str, Any]]:
    """Store a new key; its secret (shown once) and its public description.
    409 when a config key or another virtual key has the name."""
    if spec.name in taken:
        raise RequestError(f"a config API key is named {spec.name!r}", param="name", status=409)
    secret = new_secret()
    row = _row(spec, secret, now)
    detail = {k: v for k, v in public(row).items() if k not in ("name", "created_at")}
    if not await store.add_virtual_key(row, _event(spec.name, "create", actor, now, detail)):
        raise RequestError(f"a virtual key is named {spec.name!r}", param="name", status=409)
    return secret, public(row)


async def revoke_key(store: VirtualKeys, name: str, actor: str, now: float) -> None:
    if not await store.revoke_virtual_key(name, now, _event(name, "revoke", actor, now)):
        raise RequestError(f"no live virtual key named {name!r}", param="name", status=404)


async def rotate_key(store: VirtualKeys, name: str, actor: str, now: float) -> str:
    """A new secret for `name` (shown once); the old one stops working."""
    secret = new_secret()
    prefix = secret[:VISIBLE_CHARS]
    event = _event(name, "rotate", actor, now, {"prefix": prefix})
    if not await store.rotate_virtual_key(name, hex_digest(secret), prefix, now, event):
        raise RequestError(f"no live virtual key named {name!r}", param="name", status=404)
    return secret


def public(row: VirtualKeyRow) -> dict[str, Any]:
    """A key as the API and the CLI list it: no secret and no digest."""
    return {
        "name": row["name"],
        "prefix": row["prefix"],
        "team": row["team"],
        "user": row["key_user"],
        "routes": orjson.loads(row["routes"]) if row["routes"] else None,
        "models": orjson.loads(row["models"]) if row["models"] else None,
        "budget_usd": row["budget_usd"],
        "budget_period": row["budget_period"],
        "rpm": row["rpm"],
        "tpm": row["tpm"],
        "created_at": row["created_at"],
        "revoked_at": row["revoked_at"],
    }


def audit_json(event: KeyEventRow) -> dict[str, Any]:
    return {**event, "detail": orjson.loads(event["detail"]) if event["detail"] else None}


def api_key(row: VirtualKeyRow) -> ApiKey:
    def names(text: str | None) -> frozenset[str] | None:
        return None if text is None else frozenset(orjson.loads(text))

    return ApiKey(
        name=row["name"],
        sha256=bytes.fromhex(row["key_sha256"]),
        models=names(row["models"]),
        team=row["team"],
        user=row["key_user"],
        routes=names(row["routes"]),
        virtual=True,
    )


class KeyRefresher:
    """Reloads the live virtual keys into `ring` (and their limits through `apply`)
    every `interval_s`; a failed read keeps the last keys and is retried."""

    def __init__(
        self, ring: KeyRing, store: VirtualKeys, interval_s: float, limits: KeyLimits | None = None
    ) -> None:
        self.ring, self.store, self.interval_s, self.limits = ring, store, interval_s, limits
        self._failing = False

    async def refresh(self) -> None:
        rows = await self.store.virtual_keys()
        self.ring.replace_virtual({bytes.fromhex(r["key_sha256"]): api_key(r) for r in rows})
        if self.limits is not None:
            self.limits.apply(rows)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    log.warning("virtual keys not refreshed (keeping the last ones): %s", exc)
                self._failing = True
            await asyncio.sleep(self.interval_s)
