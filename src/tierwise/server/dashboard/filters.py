"""The dashboard's filters: route, team and final model from the query string,
checked against what the request log and the key ring hold, plus the
auto-refresh interval. Teams come from the API keys (configured and virtual)
and from the log: a team's requests are those logged with it, and those logged
before teams were that were made with one of its keys."""

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


def teams_of(ring: KeyRing, logged: list[str] | None = None) -> list[str]:
    """The teams of the ring's keys and the `logged` teams."""
    return sorted({k.team for k in ring.named() if k.team} | set(logged or ()))


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
    query: Mapping[str, str],
    since_text: str,
    choices: FilterChoices,
    ring: KeyRing,
    logged: list[str] | None = None,
) -> Filters:
    """The filters in `query`, teams being the ring's and the `logged` ones; raises
    RequestError for a value nothing has."""
    teams = teams_of(ring, logged)
    route = _chosen(query, "route", choices["routes"])
    team = _chosen(query, "team", teams)
    model = _chosen(query, "model", choices["models"])
    owned = () if team is None else ring.team_keys(team)
    where = RequestFilter(route, model, team=team, team_keys=owned)
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
    """The filters in `query`, checked against the routes, models and teams ever
    logged by requests in `scope`."""
    choices = await store.filter_choices(0.0, now + 1.0, scope)
    logged = await store.logged_teams(0.0, now + 1.0, scope)
    return read_filters(query, since_text, choices, ring, logged)
