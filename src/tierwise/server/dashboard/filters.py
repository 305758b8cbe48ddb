"""The dashboard's filters: route, team and final model from the query string,
checked against what the request log and the key ring hold, plus the
auto-refresh interval. Teams come from the API keys: a team's requests are
those made with any of its keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from tierwise.errors import RequestError
from tierwise.server.auth import KeyRing
from tierwise.store import Store
from tierwise.store.reports import EVERYTHING, FilterChoices, RequestFilter

REFRESH_S = (0, 30, 60)
NAMES = ("route", "team", "model")


@dataclass(frozen=True, slots=True)
class Filters:
    """What the viewer asked for (None: everything) and what they could ask for."""

    since_text: str
    route: str | None = None
    team: str | None = None
    model: str | None = None
    refresh_s: int = 0
    routes: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    where: RequestFilter = EVERYTHING

    @property
    def active(self) -> bool:
        return self.where != EVERYTHING

    def query(self, **changes: str | int | None) -> str:
        """This view's query string with `changes`, leaving out empty values."""
        values: dict[str, str | int | None] = {
            "since": self.since_text,
            "route": self.route,
            "team": self.team,
            "model": self.model,
            "refresh": self.refresh_s or None,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v not in (None, "", 0)})


def team_keys(ring: KeyRing, team: str) -> tuple[str, ...]:
    return tuple(sorted(k.name for k in ring.keys if k.team == team))


def teams_of(ring: KeyRing) -> list[str]:
    return sorted({k.team for k in ring.keys if k.team})


def _chosen(query: Mapping[str, str], name: str, allowed: list[str]) -> str | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if value not in allowed:
        raise RequestError(f"unknown {name} {value!r}: choose one of {allowed}", param=name)
    return value


def refresh_of(query: Mapping[str, str]) -> int:
    text = query.get("refresh", "").strip() or "0"
    if not text.isdigit() or int(text) not in REFRESH_S:
        raise RequestError("refresh is off (0), 30 or 60 seconds", param="refresh")
    return int(text)


def read_filters(
    query: Mapping[str, str], since_text: str, choices: FilterChoices, ring: KeyRing
) -> Filters:
    """The filters in `query`; raises RequestError for a value nothing has."""
    teams = teams_of(ring)
    route = _chosen(query, "route", choices["routes"])
    team = _chosen(query, "team", teams)
    model = _chosen(query, "model", choices["models"])
    where = RequestFilter(route, model, None if team is None else team_keys(ring, team))
    return Filters(
        since_text,
        route,
        team,
        model,
        refresh_of(query),
        choices["routes"],
        teams,
        choices["models"],
        where,
    )


async def load_filters(
    store: Store,
    query: Mapping[str, str],
    since_text: str,
    ring: KeyRing,
    now: float,
    scope: RequestFilter = EVERYTHING,
) -> Filters:
    """The filters in `query`, checked against the routes and models ever logged
    by requests in `scope`."""
    choices = await store.filter_choices(0.0, now + 1.0, scope)
    return read_filters(query, since_text, choices, ring)
