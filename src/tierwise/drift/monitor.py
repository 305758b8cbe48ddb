"""Drift checks of a route's traffic against its reference window, and the audited
path by which a router's threshold changes.

The reference window starts at the route's last applied calibration (or at its
oldest logged request) and lasts `drift.window_s`; the current window is the last
`window_s`. When the share of calls to the strongest tier, the prompt embeddings or
the feedback per tier moved beyond the configured bounds, or the strong share is
further than `share_bound` from its target, a recalibrated value is proposed in the
audit log, and applied when the route's `apply` is on. Only routers that implement
`tierwise.routing.tuning.Tunable` are checked; `drift.apply` sets applied values on
every replica.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from tierwise.drift import detect
from tierwise.drift.apply import retune
from tierwise.drift.audit import (
    Calibration,
    latest_applied,
    read_calibrations,
    write_calibration,
)
from tierwise.drift.config import DriftConfig, DriftRouteConfig
from tierwise.drift.recalibrate import Recalibration, recalibrate_share, replayed_share
from tierwise.routing.base import Router
from tierwise.routing.tuning import ReplayRule, Tunable
from tierwise.store.base import Store

if TYPE_CHECKING:
    from tierwise.gateway import Gateway

log = logging.getLogger("tierwise.drift")
BOUNDS = {"margin": (-1.0, 1.0), "cost_weight": (0.0, 10.0), "threshold": (0.0, 1.0)}


def tuning_rule(router: Router | None, tiers: Sequence[str]) -> ReplayRule | None:
    """The threshold-like parameter of a route's router, or None when it has none."""
    return router.tuning_rule(tiers) if isinstance(router, Tunable) else None


async def window(
    store: Store, route: str, router: str, start: float, end: float
) -> list[dict[str, Any]]:
    return [dict(row) for row in await store.drift_window(route, router, start, end)]


def signals(
    reference: list[dict[str, Any]],
    current: list[dict[str, Any]],
    settings: DriftConfig,
    rng: np.random.Generator,
) -> detect.DriftReport:
    """Tier shares, prompt embeddings and feedback per tier, current against reference."""
    shares = detect.tier_share_drift(
        Counter(r["target"] for r in reference),
        Counter(r["target"] for r in current),
        alpha=settings.alpha,
        min_change=settings.share_bound,
    )
    sketches = [_sketches(rows) for rows in (reference, current)]
    embedding = None
    if min(len(s) for s in sketches) >= 20:
        embedding = detect.embedding_drift(
            sketches[0],
            sketches[1],
            rng,
            alpha=settings.alpha,
            min_distance=settings.embedding_bound,
            n_permutations=max(200, int(2 / settings.alpha)),
        )
    quality = detect.quality_drift(
        _feedback(reference),
        _feedback(current),
        alpha=settings.alpha,
        min_drop=settings.quality_bound,
    )
    return detect.DriftReport(shares, embedding, quality)


def _sketches(rows: list[dict[str, Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    vectors = [orjson.loads(r["sketch"]) for r in rows if r["sketch"]]
    return np.array(vectors, dtype=np.float64).reshape(len(vectors), -1)


def _feedback(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in rows:
        if r["feedback"] is not None and r["tier"]:
            out.setdefault(r["tier"], []).append(float(r["feedback"]))
    return out


async def reference_start(store: Store, route: str, router: str) -> tuple[float | None, bool]:
    """The start of the reference window, and whether it is an applied calibration."""
    applied = (await latest_applied(store)).get(route)
    if applied is not None:
        return float(applied["created_at"]), True
    return await store.first_request_at(route, router), False


async def check_route(
    gateway: Gateway,
    store: Store,
    route: str,
    now: float,
    *,
    actor: str = "drift-monitor",
    rng: np.random.Generator | None = None,
    quiet_s: float = 0.0,
) -> dict[str, Any]:
    """One drift check of `route`; proposes (or applies) a recalibration when due. The
    current window starts no earlier than the last applied calibration. No entry is
    written within `quiet_s` of the route's last one (replicas checking together), nor
    when it repeats the pending proposal."""
    settings, wanted = gateway.config.drift, gateway.config.drift.routes[route]
    target = gateway.targets.get(route)
    tiers = [s.tier for s in target.steps]
    rule = tuning_rule(target.router, tiers)
    if target.router is None or rule is None:
        return {"route": route, "status": "skipped", "why": "the route's router has no threshold"}
    name = target.router.name
    start, calibrated = await reference_start(store, route, name)
    since = max(now - settings.window_s, start) if calibrated and start else now - settings.window_s
    current = await window(store, route, name, since, now)
    if len(current) < settings.min_requests or start is None:
        return {"route": route, "status": "waiting", "requests": len(current)}
    reference = await window(store, route, name, start, start + settings.window_s)
    report = None
    if start + settings.window_s <= now - settings.window_s and reference:
        report = signals(reference, current, settings, rng or np.random.default_rng())
    share = sum(r["target"] == tiers[-1] for r in current) / len(current)
    off_target = abs(share - wanted.strong_share) > settings.share_bound
    result: dict[str, Any] = {
        "route": route,
        "requests": len(current),
        "strong_share": share,
        "target_share": wanted.strong_share,
        "signals": report.describe() if report else [],
        "drifted": bool(report and report.drifted),
        "off_target": off_target,
    }
    if not (result["drifted"] or off_target):
        return {**result, "status": "ok"}
    found = await _recalibrate(gateway, store, route, rule, current, now, actor, quiet_s)
    return {**result, **found}


async def _recalibrate(
    gateway: Gateway,
    store: Store,
    route: str,
    rule: ReplayRule,
    current: list[dict[str, Any]],
    now: float,
    actor: str,
    quiet_s: float,
) -> dict[str, Any]:
    settings, wanted = gateway.config.drift, gateway.config.drift.routes[route]
    target = gateway.targets.get(route)
    scores = [orjson.loads(r["scores"]) for r in current if r["scores"]]
    try:
        found = recalibrate_share(
            rule,
            scores,
            target.steps[-1].tier,
            wanted.strong_share,
            _bounds(wanted, rule.name),
            min_requests=settings.min_requests,
            window=f"last {settings.window_s:g} s before {now:.0f}",
        )
    except ValueError as exc:
        return {"status": "not_recalibrated", "why": str(exc)}
    last = await read_calibrations(store, route, limit=1)
    if last and _repeats(last[0], now, quiet_s, found, rule, scores, settings.share_bound):
        same = last[0]["calibration_id"]
        return {"status": "unchanged", "calibration": found.evidence, "id": same}
    entry = Calibration(
        route, found.parameter, found.old_value, found.new_value, wanted.apply, now,
        found.evidence, actor,
    )  # fmt: skip
    await write_calibration(store, entry)
    if wanted.apply:
        retune(target.router, found.parameter, found.new_value)
    status = "applied" if wanted.apply else "proposed"
    _log_change(route, status, found)
    return {"status": status, "calibration": found.evidence, "id": entry.calibration_id}


def _log_change(route: str, status: str, found: Recalibration) -> None:
    log.warning(
        "route %s: %s %s %.4g -> %.4g (strong share %.1f%% -> %.1f%%)",
        route, status, found.parameter, found.old_value, found.new_value,
        100 * found.share_before, 100 * found.share_after,
    )  # fmt: skip


def _repeats(
    last: dict[str, Any],
    now: float,
    quiet_s: float,
    found: Recalibration,
    rule: ReplayRule,
    scores: list[dict[str, float]],
    share_bound: float,
) -> bool:
    """Within `quiet_s` of the last entry, or the pending proposal still meets the
    target on this window (within half the share bound)."""
    if float(last["created_at"]) > now - quiet_s:
        return True
    if last["applied"] or last["parameter"] != found.parameter:
        return False
    strong = found.evidence["strong_tier"]
    share = replayed_share(rule, scores, strong, float(last["new_value"]))
    return abs(share - found.target_share) <= share_bound / 2


def _bounds(wanted: DriftRouteConfig, parameter: str) -> tuple[float, float]:
    return wanted.bounds or BOUNDS.get(parameter, (-1e6, 1e6))
