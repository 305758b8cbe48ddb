"""How a tuned learned router does on prompts it never saw, measured as it will run.

Outer split: K folds grouped by prompt text (nested cross-validation), or each
benchmark group held out in turn (`tierwise.evaluation.splits.holdout_plan`). For each
outer part the whole of `tierwise.learning.tuning.select` (candidates, inner folds,
operating point) runs on the part's training rows only; the chosen router is fitted on
those rows and routes the held-out rows once, at the chosen point. The pooled held-out
decisions give the estimate: cost and quality as shares of always-strong on the same
prompts, with 95% percentile intervals from a seeded bootstrap over prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tierwise.embeddings.base import Embedder
from tierwise.evaluation import splits
from tierwise.evaluation.splits import SplitPlan
from tierwise.learning.models import TrainedRouter
from tierwise.learning.tuning import (
    Index,
    Problem,
    Selection,
    decide,
    finite,
    fit_setting,
    select,
    selection_json,
    train_relative,
)

Interval = tuple[float, float]


@dataclass(frozen=True)
class Part:
    name: str
    prompts: int
    train_prompts: int
    selection: Selection
    cost_share: float
    quality_share: float


@dataclass(frozen=True)
class Estimate:
    split: dict[str, Any]
    target: float
    parts: list[Part]
    cost_share: float
    quality_share: float
    strong_share: float
    intervals: dict[str, Interval]
    prompts: int
    samples: int


def outer_plan(problem: Problem, folds: int, holdout_by: str | None) -> SplitPlan:
    """K folds grouped by text over the complete rows, or leave-one-group-out."""
    table = problem.table
    if holdout_by is not None:
        return splits.holdout_plan(table, holdout_by, None, problem.seed)
    rows = problem.complete(np.arange(len(table), dtype=np.intp))
    return splits.fold_plan(table, rows, folds, problem.seed)


def apply(problem: Problem, selection: Selection, train: Index, test: Index) -> Index:
    """The selected router fitted on `train`, deciding `test` at its point."""
    chosen = selection.chosen
    x = problem.vectors[chosen.setting.embedder]
    y = problem.table.scores
    predictor = fit_setting(chosen.setting, x[train], y[train], problem.seed)
    relative = train_relative(problem, train)
    return decide(problem, predictor.predict(x[test]), relative, chosen.value)


def shares(problem: Problem, rows: Index, choice: Index) -> tuple[float, float]:
    """(cost, quality) of `choice` on `rows` as shares of always-strong's."""
    scores, costs, s = problem.table.scores[rows], problem.costs[rows], problem.strong
    at = np.arange(len(rows))
    cost = costs[at, choice].mean() / costs[:, s].mean()
    quality = scores[at, choice].mean() / scores[:, s].mean()
    return float(cost), float(quality)


def estimate(problem: Problem, plan: SplitPlan, samples: int = 2000) -> Estimate:
    """Each outer part chosen, fitted and decided on its own training rows only."""
    choice = np.zeros(len(plan.rows), dtype=np.intp)
    parts = []
    for k, name in enumerate(plan.names):
        at = np.flatnonzero(plan.part == k)
        if not at.size:
            continue
        train = plan.train[k]
        selection = select(problem, train)
        choice[at] = apply(problem, selection, train, plan.rows[at])
        cost, quality = shares(problem, plan.rows[at], choice[at])
        parts.append(Part(name, int(at.size), len(train), selection, cost, quality))
    cost, quality = shares(problem, plan.rows, choice)
    strong = float((choice == problem.strong).mean())
    intervals = bootstrap(problem, plan.rows, choice, samples)
    return Estimate(
        plan.info, problem.target, parts, cost, quality, strong, intervals, len(plan.rows), samples
    )


def bootstrap(problem: Problem, rows: Index, choice: Index, samples: int) -> dict[str, Interval]:
    """95% percentile intervals of the cost and quality shares over resampled prompts."""
    n = len(rows)
    rng = np.random.default_rng(problem.seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=samples).astype(np.float64)
    at, s = np.arange(n), problem.strong
    scores, costs = problem.table.scores[rows], problem.costs[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = (weights @ costs[at, choice]) / (weights @ costs[:, s])
        quality = (weights @ scores[at, choice]) / (weights @ scores[:, s])

    def interval(values: Any) -> Interval:
        known = values[np.isfinite(values)]
        if not known.size:
            return math.nan, math.nan
        low, high = np.percentile(known, [2.5, 97.5])
        return float(low), float(high)

    return {"cost_share": interval(cost), "quality_share": interval(quality)}


def estimate_json(result: Estimate) -> dict[str, Any]:
    parts = [
        {
            "name": p.name,
            "prompts": p.prompts,
            "train_prompts": p.train_prompts,
            "cost_share_of_strong": p.cost_share,
            "quality_share_of_strong": p.quality_share,
            "chosen": selection_json(p.selection)["chosen"],
        }
        for p in result.parts
    ]
    data = {
        "split": result.split,
        "quality_target": result.target,
        "prompts": result.prompts,
        "cost_share_of_strong": result.cost_share,
        "quality_share_of_strong": result.quality_share,
        "strong_share": result.strong_share,
        "intervals": {k: list(v) for k, v in result.intervals.items()},
        "bootstrap_samples": result.samples,
        "parts": parts,
    }
    cleaned: dict[str, Any] = finite(data)
    return cleaned


def final_router(
    problem: Problem, embedders: dict[str, Embedder], extra: dict[str, Any]
) -> tuple[TrainedRouter, Selection]:
    """The selection on every row, fitted on every row, with its operating point."""
    table = problem.table
    rows = np.arange(len(table), dtype=np.intp)
    selection = select(problem, rows)
    chosen = selection.chosen
    embedder = embedders[chosen.setting.embedder]
    x = problem.vectors[chosen.setting.embedder]
    predictor = fit_setting(chosen.setting, x, table.scores, problem.seed)
    weight = chosen.value if selection.knob == "cost_weight" else 0.0
    threshold = chosen.value if selection.knob == "threshold" else None
    router = TrainedRouter(
        predictor,
        list(table.models),
        table.mean_scores(),
        table.mean_costs(),
        embedder.name,
        embedder.dimension,
        table.content_hash,
        len(table),
        datetime.now(UTC).isoformat(),
        float(weight),
        {**extra, "tuning": selection_json(selection)},
        threshold,
    )
    return router, selection
