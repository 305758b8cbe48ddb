"""What `tierwise train` does: choose a learned router on a table, estimate it on
unseen prompts, fit it on every row and describe the result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tierwise.embeddings.base import Embedder
from tierwise.learning.models import TrainedRouter
from tierwise.learning.nested import Estimate, estimate, estimate_json, final_router, outer_plan
from tierwise.learning.outcomes import OutcomeTable
from tierwise.learning.store import make_embedder
from tierwise.learning.train import table_vectors
from tierwise.learning.tuning import GRIDS, Problem, Selection, Tried

ALL = "all"


@dataclass(frozen=True)
class Plan:
    methods: tuple[str, ...]
    embedders: tuple[str, ...]
    target: float
    folds: int
    inner_folds: int
    holdout_by: str | None
    strong: str | None
    cheap: str | None
    seed: int
    cost_weight: float | None = None
    partial: bool = False
    """Sparse scores (a request log): see `tuning.Problem.partial`."""


def names(value: str, known: Sequence[str], what: str) -> tuple[str, ...]:
    """A comma-separated list (or `all` of `known`); an unknown name is a ValueError."""
    items = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if items == (ALL,):
        return tuple(known)
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        given = ", ".join(unknown) or repr(value)
        raise ValueError(f"unknown {what} {given}; known: {', '.join(known)}")
    return items


def problem_of(table: OutcomeTable, plan: Plan) -> tuple[Problem, dict[str, Embedder]]:
    """The table's problem, with its embeddings read through the embedding cache."""
    from tierwise.evaluation.runner import eval_costs, pick_models

    if not 0 < plan.target <= 1.5:
        raise ValueError("--quality-target is a share of the strong model's quality, e.g. 0.95")
    s, c = pick_models(table, plan.strong, plan.cheap)
    costs, unit = eval_costs(table, s)
    embedders = {name: make_embedder(name) for name in plan.embedders}
    vectors = {name: table_vectors(table, e) for name, e in embedders.items()}
    problem = Problem(
        table,
        vectors,
        costs,
        unit,
        s,
        c,
        plan.target,
        plan.methods,
        plan.inner_folds,
        plan.seed,
        plan.partial,
    )
    return problem, embedders


def run(table: OutcomeTable, plan: Plan) -> tuple[TrainedRouter, Selection, Estimate | None]:
    """Estimate (unless no outer split is asked for), then the final router."""
    problem, embedders = problem_of(table, plan)
    result = None
    extra: dict[str, Any] = {"quality_target": plan.target, "strong": table.models[problem.strong]}
    if plan.folds or plan.holdout_by:
        result = estimate(problem, outer_plan(problem, plan.folds, plan.holdout_by))
        extra["estimate"] = estimate_json(result)
    router, selection = final_router(problem, embedders, extra)
    if plan.cost_weight is not None:
        router = replace(router, cost_weight=plan.cost_weight, threshold=None)
    return router, selection, result


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def _point(t: Tried, knob: str) -> str:
    low, high = t.interval
    return f"{knob} {t.value:.6g} (same decisions for {low:.6g} .. {high:.6g})"


def describe(
    table: OutcomeTable, router: TrainedRouter, selection: Selection, result: Estimate | None
) -> str:
    """What was chosen, on what evidence, and the estimate on unseen prompts."""
    chosen, knob = selection.chosen, selection.knob
    strong = router.extra["strong"]
    lines = [
        f"trained {chosen.setting.label()} on {len(table)} prompts x {len(table.models)} "
        f"models; strong model {strong}, quality target "
        f"{router.extra['quality_target']:.0%} of its quality",
        f"operating point: {_point(chosen, knob)}",
        f"cross-validated on the training rows at that point: {_pct(chosen.cost_share)} of "
        f"{strong}'s cost, {_pct(chosen.quality_share)} of its quality",
        "",
        "| candidate | point | cost share | quality share | target met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in selection.tried:
        mark = " (chosen)" if t is chosen else ""
        lines.append(
            f"| {t.setting.label()}{mark} | {t.value:.6g} | {_pct(t.cost_share)} "
            f"| {_pct(t.quality_share)} | {'yes' if t.met else 'no'} |"
        )
    if result is not None:
        lines += ["", *describe_estimate(result, strong)]
    return "\n".join(lines)


def describe_estimate(result: Estimate, strong: str) -> list[str]:
    """The estimate on unseen prompts, pooled and per outer part."""
    ci = result.intervals
    split = result.split
    how = (
        f"nested {split['folds']}-fold cross-validation grouped by prompt text"
        if split["kind"] == "folds"
        else f"each {split['by']} group held out in turn"
    )
    lines = [
        f"estimate on unseen prompts ({how}; every choice above made again on each outer "
        f"training part only), {result.prompts} prompts:",
        f"cost {_pct(result.cost_share)} of {strong}'s (95% CI {_pct(ci['cost_share'][0])} .. "
        f"{_pct(ci['cost_share'][1])}), quality {_pct(result.quality_share)} of its "
        f"(95% CI {_pct(ci['quality_share'][0])} .. {_pct(ci['quality_share'][1])}), "
        f"strong calls {_pct(result.strong_share)}; intervals: {result.samples} bootstrap "
        "resamples of the prompts",
        "",
        "| outer part | prompts | chosen | point | cost share | quality share |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for part in result.parts:
        t = part.selection.chosen
        lines.append(
            f"| {part.name} | {part.prompts} | {t.setting.label()} | {t.value:.6g} "
            f"| {_pct(part.cost_share)} | {_pct(part.quality_share)} |"
        )
    return lines


KNOWN_METHODS = tuple(GRIDS)
