"""API keys: kept only as SHA-256 digests. Config keys are compared in constant
time; virtual keys (kept in the store, refreshed into `KeyRing.virtual` on every
replica) are found by their digest, after the config keys. The API ring's `admins`
are the admin keys (`server.admin_keys`): they open `/metrics` and the dashboard's
full view, never an API endpoint."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from tierwise.config import ApiKeyConfig, ServerConfig, reveal
from tierwise.errors import AccessError, ConfigError

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    sha256: bytes
    models: frozenset[str] | None
    team: str | None = None
    user: str | None = None
    routes: frozenset[str] | None = None
    virtual: bool = False


class KeyRing:
    """The configured keys and the store's virtual keys; with neither, requests
    need no key. `admins` (set on the API ring by `run.build`) is the admin ring."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys
        self.virtual: dict[bytes, ApiKey] = {}
        self.admins: KeyRing | None = None

    def replace_virtual(self, keys: Mapping[bytes, ApiKey]) -> None:
        """Swap in the current virtual keys (by digest) in one assignment."""
        self.virtual = dict(keys)

    def named(self) -> list[ApiKey]:
        """Every key: the configured ones, then the virtual ones."""
        return [*self.keys, *self.virtual.values()]

    def admin_keys(self) -> list[ApiKey]:
        """The admin keys, without a team or limits: where accepted, they see all."""
        if self.admins is None:
            return []
        return [_as_admin(k) for k in self.admins.keys]

    def admin(self, headers: Mapping[str, str]) -> ApiKey | None:
        """The admin key presented (as `admin_keys` gives it), if any."""
        if self.admins is None or not self.admins.keys:
            return None
        try:
            key = self.admins.authenticate(headers)
        except AccessError:
            return None
        return None if key is None else _as_admin(key)

    def teams(self) -> dict[str, str | None]:
        """Key names to their team (a configured key's entry wins over a virtual one's)."""
        return {k.name: k.team for k in reversed(self.named())}

    def team_keys(self, team: str) -> tuple[str, ...]:
        """The names of the keys, configured or virtual, of `team`."""
        return tuple(sorted({k.name for k in self.named() if k.team == team}))

    def of_team(self, team: str) -> KeyRing:
        """A ring of only `team`'s keys, configured and virtual."""
        ring = KeyRing([k for k in self.keys if k.team == team])
        ring.replace_virtual({d: k for d, k in self.virtual.items() if k.team == team})
        return ring

    @classmethod
    def from_config(cls, config: ServerConfig, environ: Mapping[str, str] | None = None) -> KeyRing:
        ring = cls.from_entries(config.api_keys, environ)
        if not ring.keys and config.host not in LOOPBACK and not config.allow_unauthenticated:
            raise ConfigError(
                f"server.host {config.host!r} is not loopback and no server.api_keys are set; "
                "add keys or set server.allow_unauthenticated: true",
                key="server.api_keys",
            )
        return ring

    @classmethod
    def from_entries(
        cls, entries: Sequence[ApiKeyConfig], environ: Mapping[str, str] | None = None
    ) -> KeyRing:
        keys = []
        for entry in entries:
            sha = (
                bytes.fromhex(entry.key_sha256)
                if entry.key_sha256
                else (digest(reveal(entry.key, environ)) if entry.key else b"")
            )
            models = frozenset(entry.models) if entry.models is not None else None
            keys.append(ApiKey(entry.name, sha, models, entry.team))
        return cls(keys)

    def authenticate(self, headers: Mapping[str, str]) -> ApiKey | None:
        """The caller's key (None when no keys are configured); raises AccessError."""
        if not self.keys and not self.virtual:
            return None
        presented = _presented(headers)
        if presented is None:
            raise AccessError("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'")
        wanted = digest(presented)
        match = None
        for key in self.keys:
            if hmac.compare_digest(key.sha256, wanted):
                match = key
        if match is None:
            match = self.virtual.get(wanted)
        if match is None:
            raise AccessError("invalid API key")
        return match


def _as_admin(key: ApiKey) -> ApiKey:
    return replace(key, team=None, models=None, routes=None)


def _presented(headers: Mapping[str, str]) -> str | None:
    bearer = headers.get("authorization", "")
    if bearer[:7].lower() == "bearer " and bearer[7:].strip():
        return bearer[7:].strip()
    return headers.get("x-api-key") or None


def check_model(key: ApiKey | None, model: str) -> None:
    """403 unless the key may name `model` (a route, tier or deployment): keys
    limited by `models` and/or `routes` may use the names in either."""
    if key is None or (key.models is None and key.routes is None):
        return
    if model not in (key.models or frozenset()) | (key.routes or frozenset()):
        raise AccessError(f"API key {key.name!r} may not use model {model!r}", status=403)


def check_metrics(ring: KeyRing, headers: Mapping[str, str]) -> None:
    """`/metrics` shows every team's series: open while no API key exists, then
    open to admin keys and to the config's API keys without a team; a team's key or
    a virtual key (which sees only its own requests elsewhere) gets 403."""
    if ring.admin(headers) is not None:
        return
    key = ring.authenticate(headers)
    if key is not None and (key.team is not None or key.virtual):
        whose = f"belongs to team {key.team!r}" if key.team else "is a virtual key"
        raise AccessError(
            f"API key {key.name!r} {whose}: it sees its own requests on the dashboard "
            "and in `tierwise report`, while /metrics shows every team "
            "(use an admin key or a config API key without a team)",
            status=403,
        )
