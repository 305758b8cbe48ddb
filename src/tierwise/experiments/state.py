"""The experiments a gateway runs: their definitions, their state, and the arm a
request lands in. State changes arrive as events (from the admin API, the guardrail
monitor or another replica through the store) and are applied in time order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tierwise.errors import ConfigError
from tierwise.experiments.assign import assign, unit_of
from tierwise.experiments.spec import ExperimentConfig
from tierwise.types import ChatRequest

Action = Literal["create", "start", "stop", "rollback"]
Status = Literal["running", "stopped"]


@dataclass(frozen=True, slots=True)
class Event:
    """`serving`: for stop and rollback, the variant every request gets from then on
    (None: the route as configured)."""

    experiment: str
    created_at: float
    action: Action
    definition: ExperimentConfig | None = None
    serving: str | None = None
    reason: str = ""
    actor: str = ""


@dataclass(frozen=True, slots=True)
class ExperimentState:
    name: str
    config: ExperimentConfig
    status: Status
    serving: str | None = None
    reason: str = ""
    updated_at: float = 0.0
    rolled_back: bool = False
    weights: tuple[tuple[str, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = tuple((name, v.weight) for name, v in self.config.variants.items())
        object.__setattr__(self, "weights", pairs)

    def overview(self) -> dict[str, Any]:
        """Name, state and why, as plain data."""
        return {
            "name": self.name,
            "status": self.status,
            "serving": self.serving,
            "rolled_back": self.rolled_back,
            "reason": self.reason,
            "route": self.config.route,
            "unit": self.config.unit,
        }


@dataclass(frozen=True, slots=True)
class Arm:
    """Where a request goes. `counted` is False after a stop: the request is served
    by the chosen variant but is no longer part of the comparison."""

    experiment: str
    variant: str
    target: str | None
    counted: bool = True
    unit: str | None = None


class Experiments:
    """Every experiment by name; at most one running per route."""

    def __init__(self, configs: Mapping[str, ExperimentConfig] | None = None) -> None:
        self._configs = dict(configs or {})
        self._states: dict[str, ExperimentState] = {}
        self._routes: dict[str, ExperimentState] = {}
        self.applied = 0
        """How many times `apply` ran: a monitor compares it across a store read."""
        self.reset([])
        self._check_routes()

    def reset(self, events: Iterable[Event]) -> None:
        """State = the configured experiments, then every event in time order (the
        store holds them all, so every replica rebuilds the same state)."""
        states: dict[str, ExperimentState] = {}
        for name, config in self._configs.items():
            status: Status = "running" if config.enabled else "stopped"
            states[name] = ExperimentState(name, config, status)
        self._states = states
        self.apply(events)

    def __bool__(self) -> bool:
        return bool(self._states)

    def states(self) -> list[ExperimentState]:
        return sorted(self._states.values(), key=lambda s: s.name)

    def find(self, name: str) -> ExperimentState | None:
        return self._states.get(name)

    def get(self, name: str) -> ExperimentState:
        try:
            return self._states[name]
        except KeyError:
            raise ConfigError(f"no experiment named {name!r}", key="experiments") from None

    def arm(
        self,
        request: ChatRequest,
        caller: str | None,
        request_id: str,
        user: str | None = None,
    ) -> Arm | None:
        """The arm of the experiment on the request's route, if any; `user` is the
        user the request is logged under (for experiments by user)."""
        state = self._routes.get(request.model)
        if state is None:
            return None
        variants = state.config.variants
        if state.status != "running":
            if state.serving is None:
                return None
            return Arm(state.name, state.serving, variants[state.serving].target, counted=False)
        unit = unit_of(state.config.unit, request, caller, request_id, user)
        if unit is None:
            return None
        chosen = assign(state.name, unit, state.weights)
        return Arm(state.name, chosen, variants[chosen].target, unit=unit)

    def _index(self) -> None:
        """The experiment that decides each route's requests."""
        routes = {s.config.route for s in self._states.values()}
        found = {r: self._on_route(r) for r in routes}
        self._routes = {r: s for r, s in found.items() if s is not None}

    def _on_route(self, route: str) -> ExperimentState | None:
        found = [s for s in self._states.values() if s.config.route == route]
        running = [s for s in found if s.status == "running"]
        if running:
            return running[0]
        serving = [s for s in found if s.serving is not None]
        return max(serving, key=lambda s: s.updated_at) if serving else None

    def apply(self, events: Iterable[Event]) -> list[ExperimentState]:
        """Apply events in time order; returns the states that changed."""
        self.applied += 1
        changed = []
        for event in sorted(events, key=lambda e: e.created_at):
            state = self._next(event)
            if state is not None:
                self._states[event.experiment] = state
                changed.append(state)
        self._index()
        return changed

    def _next(self, event: Event) -> ExperimentState | None:
        current = self._states.get(event.experiment)
        at, why = event.created_at, event.reason
        if event.action == "create" and event.definition is not None:
            return ExperimentState(event.experiment, event.definition, "running", None, why, at)
        if current is None:
            return None
        if event.action == "start":
            return replace(current, status="running", serving=None, reason=why, updated_at=at)
        rolled_back = event.action == "rollback"
        return replace(
            current,
            status="stopped",
            serving=event.serving,
            reason=why,
            updated_at=at,
            rolled_back=rolled_back,
        )

    def conflict(self, name: str, route: str) -> str | None:
        """Why `name` may not run on `route` (None: it may): another experiment runs
        there, and one route runs one experiment at a time."""
        for state in self._states.values():
            if state.status == "running" and state.config.route == route and state.name != name:
                return f"experiment {state.name!r} already runs on route {route!r}"
        return None

    def _check_routes(self) -> None:
        for state in self._states.values():
            problem = self.conflict(state.name, state.config.route)
            if state.status == "running" and problem is not None:
                raise ConfigError(
                    f"{problem}; one route runs one experiment at a time", key="experiments"
                )
