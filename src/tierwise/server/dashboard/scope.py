"""What a dashboard viewer may see.

- A key with a team, configured or virtual, sees only the requests logged with its
  team (and, for requests logged before teams were, those made with its team's keys).
- A virtual key without a team sees only the requests made with itself: no other
  key's requests or spend, no experiments.
- An admin viewer sees every request: an admin key (`server.admin_keys`), an API key
  from the config without a team (set by the operator, as in one-team setups), or
  anyone when no keys exist.
"""

from __future__ import annotations

from dataclasses import replace

from tierwise.server.auth import ApiKey, KeyRing
from tierwise.store.reports import RequestFilter


def is_admin(key: ApiKey | None) -> bool:
    return key is None or (key.team is None and not key.virtual)


def scoped(where: RequestFilter, key: ApiKey | None, ring: KeyRing) -> RequestFilter:
    """`where` narrowed to what `key` may see (nothing when it names another team)."""
    if key is None or is_admin(key):
        return where
    if key.team is None:
        keep = where.api_keys is None or key.name in where.api_keys
        return replace(where, api_keys=(key.name,) if keep else ())
    if where.team is not None and where.team != key.team:
        return replace(where, api_keys=())
    return replace(where, team=key.team, team_keys=ring.team_keys(key.team))


def may_see(key: ApiKey | None, ring: KeyRing, team: str | None, api_key: str | None) -> bool:
    """Whether `key` may see one request, logged with `team` and `api_key`."""
    if key is None or is_admin(key):
        return True
    if key.team is None:
        return api_key == key.name
    if team is not None:
        return team == key.team
    return api_key is not None and api_key in ring.team_keys(key.team)


def visible_ring(ring: KeyRing, key: ApiKey | None) -> KeyRing:
    """The keys whose names and teams `key` may see: its team's, its own, or all."""
    if key is None or is_admin(key):
        return ring
    if key.team is None:
        own = KeyRing([])
        own.replace_virtual({key.sha256: key})
        return own
    return ring.of_team(key.team)


def key_teams(ring: KeyRing) -> dict[str, str | None]:
    """API key names (configured and virtual) to their team."""
    return ring.teams()


def groupings(key: ApiKey | None) -> tuple[str, ...]:
    """The spend tables the viewer gets: by team, and by key for admins."""
    return ("team", "key") if is_admin(key) else ("team",)
