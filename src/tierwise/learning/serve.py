"""Learned routers in the audit log and on every replica.

`learn_route` trains a candidate on a route's logged outcomes and, when it beats the
route's router on held-out requests, stores its file in the request store and writes
an audit entry (parameter `router`): proposed, applied, or offered as the `learned`
variant of an A/B experiment with guardrails. `rollback` writes an applied entry
that returns the route to its configured router. `Swapper.sync`, run by each
replica's monitor, serves every route with the router of its newest applied
`router` entry, and registers the targets that running experiments name.

This module imports numpy only when it trains or loads a learned router.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from tierwise.drift.audit import Calibration, write_calibration
from tierwise.experiments.spec import ExperimentConfig, GuardrailConfig, VariantConfig
from tierwise.experiments.state import Event
from tierwise.store.base import Store
from tierwise.store.outcomes import LearnedRouterRow

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.gateway import Gateway
    from tierwise.learning import loop
    from tierwise.learning.loop import Candidate
    from tierwise.targets import Target

Mode = Literal["propose", "apply", "experiment"]
ROUTER = "router"
SEPARATOR = "~"
CONFIGURED = "the configured router"
GUARDRAILS = (
    GuardrailConfig(metric="error_rate", max_drop=0.02),
    GuardrailConfig(metric="satisfaction", max_drop=0.05),
)


@dataclass(frozen=True, slots=True)
class LearnOptions:
    """What `learn_route` looks at: the last `since_s` of the route's traffic, and
    the `Settings` overrides of `learning.loop`."""

    since_s: float = 30 * 86_400.0
    min_labelled: int = 200
    quality_target: float = 0.95
    embedder: str = "hashing"
    seed: int = 0
    quiet_s: float = 0.0
    """Skip when the route's newest `router` entry is younger than this (replicas
    learning on the same schedule propose once)."""

    def settings(self, config: GatewayConfig, route: str) -> loop.Settings:
        """How `route` of `config` learns with these options."""
        from tierwise.learning import loop

        return loop.Settings(
            tuple(config.tier_order(config.routes[route])),
            self.min_labelled,
            self.quality_target,
            self.embedder,
            seed=self.seed,
        )


def learned_target(route: str, router_id: str) -> str:
    """The target name under which a learned router serves `route` in experiments."""
    return f"{route}{SEPARATOR}{router_id}"


async def applied_routers(store: Store) -> dict[str, dict[str, Any]]:
    """Per route, the newest applied `router` entry (evidence decoded)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in await store.applied_calibrations():
        if row["parameter"] == ROUTER:
            latest[row["route"]] = {**row, "evidence": orjson.loads(row["evidence"])}
    return latest


def _serving(applied: dict[str, Any] | None) -> str | None:
    return None if applied is None else applied["evidence"].get("router_id")


def describe(config: GatewayConfig, route: str, router_id: str | None) -> str:
    if router_id is not None:
        return f"learned router {router_id}"
    return f"{CONFIGURED} ({config.routes[route].router.kind})"


async def learn_route(
    config: GatewayConfig,
    store: Store,
    route: str,
    now: float,
    options: LearnOptions,
    mode: Mode = "propose",
    actor: str = "",
    on_candidate: Callable[[Candidate], None] | None = None,
) -> dict[str, Any]:
    """Learn on `route`'s last `options.since_s` of traffic; what happened, as data.
    `on_candidate` sees every trained candidate, whether it wins or not."""
    from tierwise.learning import loop
    from tierwise.learning.from_log import collect

    if options.quiet_s > 0 and await _recent(store, route, now - options.quiet_s):
        return {"route": route, "status": "waiting", "why": "a newer router entry exists"}
    if mode == "experiment":
        await _experiment_allowed(config, store, route)
    outcomes = await collect(store, now - options.since_s, route)
    settings = options.settings(config, route)
    result: dict[str, Any] = {
        "route": route,
        "labelled": loop.labelled_count(outcomes),
        "unlabelled": outcomes.unlabelled,
        "needed": settings.min_labelled,
    }
    problem = loop.shortage(outcomes, settings)
    if problem is not None:
        return {**result, "status": "too_little_data", "why": problem + "; nothing changed"}
    candidate = await asyncio.to_thread(loop.train_candidate, outcomes, settings)
    if on_candidate is not None:
        on_candidate(candidate)
    result["comparison"] = candidate.comparison
    if not candidate.wins:
        return {**result, "status": "kept", "why": _kept_why(candidate) + "; nothing changed"}
    adopted = await _adopt(config, store, (route, now, mode, actor), candidate, result["labelled"])
    return {**result, **adopted}


async def _adopt(
    config: GatewayConfig,
    store: Store,
    how: tuple[str, float, Mode, str],
    candidate: Candidate,
    labelled: int,
) -> dict[str, Any]:
    """Store the winner and write its audit entry (`how`: route, time, mode, actor);
    in experiment mode, also start its A/B experiment."""
    from tierwise.learning import loop

    route, now, mode, actor = how
    summary = loop.summary(candidate, labelled)
    router_id = await keep_router(store, route, now, candidate.models, candidate.encoded(), summary)
    entry = await _audit(config, store, route, now, router_id, candidate.comparison, mode, actor)
    done: dict[str, Any] = {"router_id": router_id, "calibration_id": entry.calibration_id}
    if mode == "experiment":
        done["experiment"] = await _start_experiment(config, store, route, router_id, now, actor)
        return {**done, "status": "experiment"}
    return {**done, "status": "applied" if mode == "apply" else "proposed"}


def _kept_why(candidate: Candidate) -> str:
    comparison = candidate.comparison
    if comparison["support"] < comparison["min_support"]:
        matched, held = comparison["candidate"]["matched"], comparison["held_out"]
        return (
            f"the candidate's decisions meet a known outcome on {matched} of {held} "
            f"held-out requests, fewer than {comparison['min_support']:.0%}: not enough "
            "evidence that it is not worse (explore more, or wait for more traffic)"
        )
    return "the candidate does not beat the route's router on held-out requests"


async def keep_router(
    store: Store, route: str, now: float, models: dict[str, str], body: str, summary: str
) -> str:
    """Store a router file for every replica to load; its id."""
    router_id = os.urandom(8).hex()
    row = LearnedRouterRow(
        router_id=router_id,
        created_at=now,
        route=route,
        models=orjson.dumps(models).decode(),
        body=body,
        summary=summary,
    )
    await store.add_learned_router(row)
    return router_id


async def _recent(store: Store, route: str, after: float) -> bool:
    rows = await store.calibrations(route, limit=50)
    return any(r["parameter"] == ROUTER and r["created_at"] >= after for r in rows)


async def _experiment_allowed(config: GatewayConfig, store: Store, route: str) -> None:
    """Raise ConfigError when another experiment runs on `route`."""
    from tierwise.errors import ConfigError
    from tierwise.experiments.log import read_events
    from tierwise.experiments.state import Experiments

    experiments = Experiments(config.experiments)
    experiments.reset(await read_events(store))
    problem = experiments.conflict("", route)
    if problem is not None:
        raise ConfigError(problem, key="experiments")


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else float(value)


async def _audit(
    config: GatewayConfig,
    store: Store,
    route: str,
    now: float,
    router_id: str,
    comparison: dict[str, Any],
    mode: Mode,
    actor: str,
) -> Calibration:
    current = _serving((await applied_routers(store)).get(route))
    evidence = {
        "router_id": router_id,
        "old": describe(config, route, current),
        "new": describe(config, route, router_id),
        "mode": mode,
        "comparison": comparison,
    }
    entry = Calibration(
        route,
        ROUTER,
        _finite(comparison["current"]["cost_usd"]),
        _finite(comparison["candidate"]["cost_usd"]),
        mode == "apply",
        now,
        evidence,
        actor,
    )
    await write_calibration(store, entry)
    return entry


async def _start_experiment(
    config: GatewayConfig, store: Store, route: str, router_id: str, now: float, actor: str
) -> str:
    from tierwise.experiments.log import write_event

    name = f"learn-{route}-{router_id[:8]}"
    definition = ExperimentConfig(
        route=route,
        variants={
            "current": VariantConfig(),
            "learned": VariantConfig(target=learned_target(route, router_id)),
        },
        control="current",
        unit="request",
        guardrails=list(GUARDRAILS),
    )
    why = f"learned router {router_id} against {describe(config, route, None)}"
    await write_event(store, Event(name, now, "create", definition, None, why, actor))
    return name


async def rollback(
    config: GatewayConfig, store: Store, route: str, now: float, actor: str = ""
) -> dict[str, Any]:
    """Return `route` to its configured router (an applied, audited entry)."""
    applied = (await applied_routers(store)).get(route)
    current = _serving(applied)
    if applied is None or current is None:
        return {"route": route, "status": "unchanged", "why": f"{route} serves {CONFIGURED}"}
    evidence = {
        "router_id": None,
        "old": describe(config, route, current),
        "new": describe(config, route, None),
        "mode": "rollback",
        "rolled_back": applied["calibration_id"],
    }
    entry = Calibration(route, ROUTER, applied["new_value"], 0.0, True, now, evidence, actor)
    await write_calibration(store, entry)
    return {
        "route": route,
        "status": "rolled_back",
        "router_id": current,
        "calibration_id": entry.calibration_id,
    }


class Swapper:
    """One replica's learned routers: which one serves each route, and the route
    targets as configured (to return to on rollback)."""

    def __init__(self, gateway: Gateway, directory: Path | None = None) -> None:
        self.gateway = gateway
        self.directory = directory or Path(tempfile.gettempdir()) / "tierwise-learned"
        self.serving: dict[str, str | None] = {}
        self._configured: dict[str, Target] = {}

    async def sync(self, store: Store, events: Iterable[Event] = ()) -> list[str]:
        """Serve each route with its newest applied router, and register the learned
        targets that experiments name; the names that changed."""
        changed = []
        routes = self.gateway.config.routes
        for route, applied in (await applied_routers(store)).items():
            want = _serving(applied)
            if route not in routes or self.serving.get(route) == want:
                continue
            target = await self._target(store, route, want)
            if target is not None:
                self.gateway.targets.serve(route, target)
                self.serving[route] = want
                changed.append(route)
        for name in _experiment_targets(events):
            route, _, router_id = name.partition(SEPARATOR)
            if route in routes and name not in self.gateway.targets.names():
                target = await self._target(store, route, router_id)
                if target is not None:
                    self.gateway.targets.serve(name, replace(target, name=name))
                    changed.append(name)
        return changed

    async def _target(self, store: Store, route: str, router_id: str | None) -> Target | None:
        configured = self._configured.setdefault(route, self.gateway.targets.get(route))
        if router_id is None:
            return configured
        router = await load_router(store, router_id, self.directory)
        return None if router is None else replace(configured, router=router)


async def load_router(store: Store, router_id: str, directory: Path) -> Any:
    """The stored learned router `router_id` (its file kept in `directory`); None
    when the store has no such router."""
    row = await store.learned_router(router_id)
    if row is None:
        return None
    path = directory / f"{router_id}.npz"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(base64.b64decode(row["body"]))
        os.replace(partial, path)
    models = orjson.loads(row["models"])
    return await asyncio.to_thread(_load, path, models, router_id)


def _load(path: Path, models: dict[str, str], router_id: str) -> Any:
    from tierwise.routing.learned import LearnedRouter

    return LearnedRouter(path, models, name=f"learned-{router_id[:8]}")


def _experiment_targets(events: Iterable[Event]) -> list[str]:
    names = []
    for event in events:
        if event.definition is None:
            continue
        names += [
            v.target
            for v in event.definition.variants.values()
            if v.target and SEPARATOR in v.target
        ]
    return names
