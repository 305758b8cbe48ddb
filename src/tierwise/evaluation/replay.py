"""Replay candidate routers on the gateway's own request log.

A logged request has an observed outcome only for the model that served it: its
feedback score (the mean when given more than once). The replay estimator (Li et al.,
2011) scores an operating point on the requests where its choice equals the served
model (`matched`): quality is their mean feedback score; cost is each model's mean
observed cost per request applied to the point's choices over every re-routed request.
It is unbiased only when the served model was chosen at random, uniformly and
independently of the prompt (as in an A/B experiment, where `variant` is set); on
traffic that a router chose, the matched requests are the ones it sent there.
When the log keeps each decision's propensity (routes with `explore`), each matched
request is weighted by its inverse and the means are self-normalised (inverse
propensity weighting), which removes that selection: the estimate converges to the
candidate's true quality whenever every model it picks had a positive propensity.
Each model's mean cost is weighted the same way. Rows without a propensity weigh 1,
and exploration's side calls (routers `explore:shadow` and `explore:grade`) are left
out.

The log becomes an outcome table of the requests with a served model and a captured
prompt: a row's score is known only for its served model (NaN elsewhere, also when it
has no feedback) and every cost cell is its model's mean observed cost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from tierwise.evaluation import metrics as m
from tierwise.evaluation.metrics import Index, Point
from tierwise.evaluation.runner import (
    COST_WEIGHTS,
    Routed,
    clean_json,
    parse_spec,
    pick_models,
    point_json,
    route,
)
from tierwise.evaluation.splits import fold_plan, separate_plan
from tierwise.learning.models import choose, strong_win_rate
from tierwise.learning.outcomes import OutcomeTable
from tierwise.routing.explore import SIDE_ROUTERS

PICO = 1e12
ESTIMATOR = (
    "replay (Li et al. 2011): quality is the mean feedback score of the logged requests "
    "where the candidate's choice equals the model that served them (matched); cost is "
    "each model's mean observed cost per request applied to the candidate's choices. "
    "Unbiased only when the served model was chosen at random, uniformly and "
    "independently of the prompt (e.g. traffic of an A/B experiment, where variant is set)."
)
ESTIMATOR_IPW = (
    "replay with inverse propensity weighting: quality is the mean feedback score of the "
    "logged requests where the candidate's choice equals the model that served them "
    "(matched), each weighted by 1 / the logged propensity of its routing decision and "
    "self-normalised; cost is each model's propensity-weighted mean observed cost per "
    "request applied to the candidate's choices. Consistent (unbiased as the log grows) "
    "whenever every model the candidate picks had a positive logged propensity."
)


@dataclass(frozen=True)
class RequestLog:
    """Re-routable logged requests as an outcome table, each row's served model,
    counts of what the log holds, and where it came from (without credentials)."""

    table: OutcomeTable
    served: Index
    counts: dict[str, Any]
    source: str
    weights: np.ndarray[Any, np.dtype[np.float64]] | None = None
    """Per table row, 1 / its decision's logged propensity; None when no row has one."""


def safe_url(url: str) -> str:
    """The store URL without a user name or password."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def read_log(url: str, route_name: str | None = None) -> RequestLog:
    """Open the store at `url` (read only) and build the replay table."""
    requests, feedback, logged = asyncio.run(fetch(url, route_name))
    return build_log(requests, feedback, logged, safe_url(url))


async def fetch(
    url: str, route_name: str | None
) -> tuple[list[dict[str, Any]], dict[str, float], int]:
    """Served requests (oldest first), mean feedback per request id, and how many
    requests the log holds, for one route or all."""
    from tierwise.store import open_store

    store = open_store(url)
    try:
        requests = [dict(r) for r in await store.served_requests(route_name)]
        count = await store.count_requests(route_name)
        feedback = await store.mean_feedback()
    finally:
        await store.close()
    return requests, feedback, count


def build_log(
    requests: Sequence[dict[str, Any]], feedback: dict[str, float], logged: int, source: str
) -> RequestLog:
    """The replay table of `requests` (those with a prompt) and the log's counts."""
    requests = [r for r in requests if r.get("router") not in SIDE_ROUTERS]
    models = sorted({str(r["final_model"]) for r in requests})
    if len(models) < 2:
        raise ValueError(f"the log's requests were served by {models}: replay needs two models")
    served_all = np.array([models.index(str(r["final_model"])) for r in requests], dtype=np.intp)
    cost = np.array([float(r["cost_pusd"] or 0) / PICO for r in requests])
    weights = inverse_propensities(requests)
    w = np.ones(len(requests)) if weights is None else weights
    mean_cost = np.array(
        [np.average(cost[served_all == j], weights=w[served_all == j]) for j in range(len(models))]
    )
    keep = [i for i, r in enumerate(requests) if r.get("prompt")]
    if not keep:
        raise ValueError("no logged request has a prompt; turn on prompt capture")
    ids = [str(requests[i]["request_id"]) for i in keep]
    scores = np.full((len(keep), len(models)), np.nan)
    served = served_all[keep]
    scores[np.arange(len(keep)), served] = [feedback.get(i, math.nan) for i in ids]
    table = OutcomeTable(
        ids,
        [str(requests[i]["prompt"]) for i in keep],
        [str(requests[i]["route"]) for i in keep],
        models,
        scores,
        np.tile(mean_cost, (len(keep), 1)),
        _digest(requests, feedback),
    )
    counts = _counts(requests, feedback, keep, logged, models, served)
    counts["mean_cost_usd"] = {name: float(v) for name, v in zip(models, mean_cost, strict=True)}
    kept = None if weights is None else weights[keep]
    return RequestLog(table, served, counts, source, kept)


def inverse_propensities(
    requests: Sequence[dict[str, Any]],
) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """1 / each request's logged propensity (1 where none is logged, 0 where it is 0);
    None when no request has one."""
    logged = [r.get("decision_propensity") for r in requests]
    if all(p is None for p in logged):
        return None
    p = np.array([1.0 if v is None else float(v) for v in logged])
    inverse = np.zeros_like(p)
    np.divide(1.0, p, out=inverse, where=p > 0)
    return inverse


def _digest(requests: Sequence[dict[str, Any]], feedback: dict[str, float]) -> str:
    text = json.dumps([list(requests), sorted(feedback.items())], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _counts(
    requests: Sequence[dict[str, Any]],
    feedback: dict[str, float],
    keep: list[int],
    logged: int,
    models: list[str],
    served: Index,
) -> dict[str, Any]:
    rated = [str(r["request_id"]) in feedback for r in requests]
    with_prompt = np.zeros(len(requests), dtype=bool)
    with_prompt[keep] = True
    return {
        "logged": logged,
        "served": len(requests),
        "with_prompt": len(keep),
        "with_feedback": int(sum(rated)),
        "with_prompt_and_feedback": int((with_prompt & np.array(rated, dtype=bool)).sum()),
        "with_variant": sum(1 for r in requests if r.get("variant")),
        "served_by": {name: int((served == j).sum()) for j, name in enumerate(models)},
    }


@dataclass(frozen=True)
class ReplayResult:
    router: str
    log: RequestLog
    split: dict[str, Any]
    strong: str
    cheap: str
    points: list[Point]
    baselines: list[Point]
    matched: dict[str, int | None]
    targets: dict[str, dict[str, float | str | None]]
    choices: list[tuple[str, float, Index]] = field(repr=False)


def replay_point(
    label: str,
    param: float,
    choice: Index,
    table: OutcomeTable,
    s: int,
    weights: np.ndarray[Any, np.dtype[np.float64]] | None = None,
) -> Point:
    """The replay estimate of one choice vector (quality NaN when nothing matched);
    with `weights`, the matched scores' weighted mean."""
    point = m.point(label, param, table.scores, table.costs, choice, table.models, s)
    if weights is None:
        return point
    return replace(point, quality=weighted_quality(choice, table, weights))


def weighted_quality(
    choice: Index, table: OutcomeTable, weights: np.ndarray[Any, np.dtype[np.float64]]
) -> float:
    """The self-normalised inverse-propensity mean of the matched scores."""
    got = table.scores[np.arange(len(choice)), choice]
    known = ~np.isnan(got) & (weights > 0)
    if not known.any():
        return math.nan
    return float(np.sum(weights[known] * got[known]) / np.sum(weights[known]))


def matched_count(choice: Index, table: OutcomeTable) -> int:
    """Requests whose choice is the served model and that have feedback."""
    return int((~np.isnan(table.scores[np.arange(len(choice)), choice])).sum())


def replay(
    log: RequestLog,
    router: str,
    *,
    folds: int = 5,
    seed: int = 0,
    strong: str | None = None,
    cheap: str | None = None,
) -> ReplayResult:
    """Replay estimates of `router` (a spec or a router file) on the log, with each
    model and the logged choices as baselines."""
    table = log.table
    s, c = pick_models(table, strong, cheap)
    routed, split = candidate(table, router, s, c, folds, seed)
    w = log.weights
    points = [replay_point(lb, p, ch, table, s, w) for lb, p, ch in routed.choices]
    n, k, names = len(table), len(table.models), table.models
    fixed = [(f"always {name}", float(j), np.full(n, j, np.intp)) for j, name in enumerate(names)]
    fixed.append(("logged", 0.0, log.served))
    baselines = [replay_point(lb, p, ch, table, s, w) for lb, p, ch in fixed]
    baselines[k:k] = m.random_mix(baselines[:k], s)
    matched: dict[str, int | None] = {lb: matched_count(ch, table) for lb, _, ch in fixed}
    matched.update({lb: matched_count(ch, table) for lb, _, ch in routed.choices})
    return ReplayResult(
        router,
        log,
        split,
        table.models[s],
        table.models[c],
        points,
        baselines,
        matched,
        m.quality_targets(points, baselines[s]),
        routed.choices,
    )


def candidate(
    table: OutcomeTable, router: str, s: int, c: int, folds: int, seed: int
) -> tuple[Routed, dict[str, Any]]:
    """Decisions of a spec (a learned one held out by K folds over the logged prompts
    with feedback) or of a router file, on every row of the replay table."""
    rows = np.arange(len(table), dtype=np.intp)
    try:
        spec = parse_spec(router)
    except ValueError:
        return file_routed(table, rows, router, s, c)
    if spec.kind != "learned":
        plan = separate_plan(rows, "")
        return route(spec, table, table.costs, plan, s, c, seed, None), {"kind": "rules"}
    plan = fold_plan(table, rows, folds, seed)
    routed = route(spec, table, table.costs, plan, s, c, seed, None)
    info = dict(plan.info, trained_on="logged prompts with feedback (served model only)")
    return routed, info


def file_routed(
    table: OutcomeTable, rows: Index, path: str, s: int, c: int
) -> tuple[Routed, dict[str, Any]]:
    """A router file's decisions: win-rate deciles with two models, else cost weights."""
    from pathlib import Path

    from tierwise.evaluation.calibrate import file_predictions

    p, relative, how = file_predictions(table, rows, Path(path))
    win = strong_win_rate(p, c, s)
    if len(table.models) == 2:
        cuts = [float(q) for q in np.quantile(win, np.linspace(0.0, 1.0, 11))] + [-math.inf]
        choices = [(f"t={t:.4g}", t, np.where(win > t, s, c).astype(np.intp)) for t in cuts]
    else:
        choices = [(f"w={w:g}", w, choose(p, relative, w)) for w in COST_WEIGHTS]
    zeros = np.zeros(len(rows), dtype=np.intp)
    return Routed(choices, win, zeros), {"kind": "router_file", "router": how}


def replay_json(result: ReplayResult) -> dict[str, Any]:
    """The content of a replay's metrics.json (see docs/evaluation.md)."""
    table = result.log.table
    reference = result.baselines[table.models.index(result.strong)]

    def entry(p: Point) -> dict[str, Any]:
        return dict(point_json(p, reference), matched=result.matched.get(p.label))

    data: dict[str, Any] = {
        "format": "tierwise-replay",
        "format_version": 1,
        "router": result.router,
        "log": {"source": result.log.source, "hash": table.content_hash, **result.log.counts},
        "split": result.split,
        "estimator": ESTIMATOR if result.log.weights is None else ESTIMATOR_IPW,
        "models": list(table.models),
        "strong": result.strong,
        "cheap": result.cheap,
        "cost_unit": "usd_per_request",
        "points": [entry(p) for p in result.points],
        "baselines": [entry(p) for p in result.baselines],
        "targets": result.targets,
    }
    cleaned: dict[str, Any] = clean_json(data)
    return cleaned
