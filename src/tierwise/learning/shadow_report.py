"""How a shadow router compares with a route's live router on the requests it saw.

Agreement is the share of shadowed requests where both picked the same tier, with
a 95% Wilson score interval. Quality and cost come from the outcome rows of those
requests that have a label (`learning.from_log`): each router is scored by the
replay estimator on its own decisions (`learning.loop.compare`: mean score of the
requests where the decision matches a model whose outcome is known, cost at each
model's mean billed cost, inverse-propensity weighted when the log keeps
propensities), with 95% percentile-bootstrap intervals over the requests.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.learning.shadow import SHADOW
from tierwise.store.base import Store
from tierwise.store.outcomes import ShadowPair

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.learning.from_log import LogOutcomes

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (NaN, NaN when n is 0)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def agreement(pairs: list[ShadowPair]) -> dict[str, Any]:
    """Agreement rate of shadow and live decisions, with its Wilson interval."""
    n = len(pairs)
    agree = sum(1 for p in pairs if p["shadow_target"] == p["live_target"])
    low, high = wilson(agree, n)
    return {
        "requests": n,
        "agree": agree,
        "rate": agree / n if n else math.nan,
        "interval": [low, high],
    }


async def newest_router(store: Store, route: str) -> str | None:
    """The newest router that shadowed `route` (running or stopped)."""
    from tierwise.drift.audit import read_calibrations

    for row in await read_calibrations(store, route, limit=500):
        if row["parameter"] != SHADOW:
            continue
        router_id = row["evidence"].get("router_id") or row["evidence"].get("stopped")
        if router_id:
            return str(router_id)
    return None


async def shadow_report(
    config: GatewayConfig, store: Store, route: str, since: float
) -> dict[str, Any]:
    """Agreement, and the replay estimate of the quality and cost difference
    (candidate minus live), on `route`'s shadowed requests since `since`."""
    from tierwise.learning.from_log import collect

    router_id = await newest_router(store, route)
    if router_id is None:
        return {"route": route, "status": "no_shadow", "why": f"{route} was never shadowed"}
    pairs = await store.shadow_pairs(route, router_id, since)
    result: dict[str, Any] = {
        "route": route,
        "status": "report",
        "router_id": router_id,
        "agreement": agreement(pairs),
    }
    outcomes = await collect(store, since, route)
    shadow = {p["request_id"]: p["shadow_target"] for p in pairs}
    result.update(estimate(config, route, outcomes, shadow))
    return result


def estimate(
    config: GatewayConfig, route: str, outcomes: LogOutcomes, shadow: dict[str, str]
) -> dict[str, Any]:
    """The replay comparison on the labelled shadowed rows, and how many were used."""
    from tierwise.learning.from_log import LogOutcomes

    by_tier = {tier: model for model, tier in sorted(outcomes.tiers.items(), reverse=True)}
    rows = [
        r
        for r in outcomes.rows
        if r.prompt_id in shadow and r.chosen and shadow[r.prompt_id] in by_tier
    ]
    used = {"labelled": len(rows)}
    models = sorted({m for r in rows for m in (*r.scores, *r.costs)})
    if len(rows) < 2 or len(models) < 2:
        why = f"{len(rows)} labelled shadowed requests answered by {models}"
        return {**used, "comparison": None, "why": why + "; no cost or quality estimate"}
    subset = LogOutcomes(rows, 0, outcomes.tiers)
    picks = [by_tier[shadow[r.prompt_id]] for r in rows]
    tiers = tuple(config.tier_order(config.routes[route]))
    return {**used, "comparison": _compare(subset, picks, tiers)}


def _compare(outcomes: LogOutcomes, picks: list[str], tiers: tuple[str, ...]) -> dict[str, Any]:
    import numpy as np

    from tierwise.learning import loop
    from tierwise.learning.from_log import write_csv
    from tierwise.learning.prepare import load_table

    with tempfile.TemporaryDirectory(prefix="tierwise-shadow-") as work:
        path = Path(work) / "outcomes.csv"
        write_csv(outcomes, path)
        table = load_table(path, score_scale="0-1")
    order = {r.prompt_id: i for i, r in enumerate(outcomes.rows)}
    index = [order[p] for p in table.prompt_ids]
    candidate = np.array(
        [table.models.index(picks[i]) if picks[i] in table.models else -1 for i in index],
        dtype=np.intp,
    )
    chosen = [str(outcomes.rows[i].chosen) for i in index]
    live = np.array([table.models.index(m) if m in table.models else -1 for m in chosen])
    keep = np.flatnonzero((candidate >= 0) & (live >= 0))
    rows = np.arange(len(table), dtype=np.intp)[keep]
    propensities = [outcomes.rows[index[i]].propensity for i in keep]
    weights = None
    if any(p is not None for p in propensities):
        weights = np.array([1.0 / p if p else (1.0 if p is None else 0.0) for p in propensities])
    settings = loop.Settings(tiers)
    return loop.compare(
        table, rows, rows, candidate[keep], live[keep].astype(np.intp), settings, weights
    )
