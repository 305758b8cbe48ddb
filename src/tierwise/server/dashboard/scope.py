"""What a dashboard viewer may see. A key with a team sees only the requests
made with its team's keys; a key without a team (an admin key), or any viewer
when no keys are configured, sees every request."""

from __future__ import annotations

from dataclasses import replace

from tierwise.server.auth import ApiKey, KeyRing
from tierwise.store.reports import RequestFilter


def is_admin(key: ApiKey | None) -> bool:
    return key is None or key.team is None


def scoped(where: RequestFilter, key: ApiKey | None, ring: KeyRing) -> RequestFilter:
    """`where` narrowed to what `key` may see."""
    if is_admin(key) or key is None:
        return where
    own = tuple(sorted(k.name for k in ring.keys if k.team == key.team))
    keys = own if where.api_keys is None else tuple(k for k in where.api_keys if k in own)
    return replace(where, api_keys=keys)


def visible_ring(ring: KeyRing, key: ApiKey | None) -> KeyRing:
    """The keys whose names and teams `key` may see: its team's, or all."""
    if is_admin(key) or key is None:
        return ring
    return KeyRing([k for k in ring.keys if k.team == key.team])


def key_teams(ring: KeyRing) -> dict[str, str | None]:
    """API key names to their team."""
    return {k.name: k.team for k in ring.keys}


def groupings(key: ApiKey | None) -> tuple[str, ...]:
    """The spend tables the viewer gets: by team, and by key for admins."""
    return ("team", "key") if is_admin(key) else ("team",)
