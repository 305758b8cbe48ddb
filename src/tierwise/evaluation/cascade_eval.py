"""Evaluate answer cascades on prompts not used for choosing them.

Three splits: K folds of one table grouped by prompt text, leave-one-group-out by
benchmark (`holdout_by`), or a separate training table (`evaluate_on_test`). Per
training set (`tierwise.evaluation.cascade_choose`): for each cost weight, the cascade
chosen per prompt category runs on the held-out rows (points `cascade w=<w>`); for each
quality target, the weight chosen by an inner cross-validation on the training rows
runs on them (points `target <t>`), so the target points are chosen on training data
only, and their pooled held-out quality and cost (as shares of the strong model's, with
bootstrap 95% intervals over prompts) estimate what the deployed policy reaches.
Cascades given as `fixed` are evaluated as they are, without choosing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tierwise.checks.cascade_policy import CascadePolicy
from tierwise.evaluation import metrics as m
from tierwise.evaluation.answers import AnswerTable, aligned, answer_codes
from tierwise.evaluation.cascade import Index, Matrix
from tierwise.evaluation.cascade_choose import (
    Choice,
    Pool,
    Settings,
    Totals,
    apply,
    build_pool,
    choose_for_targets,
    pick_from,
    policy_of,
    totals,
)
from tierwise.evaluation.metrics import Point
from tierwise.evaluation.runner import (
    EvalResult,
    aiq_summary,
    baseline_points,
    eval_costs,
    evaluated_rows,
    pick_models,
)
from tierwise.evaluation.splits import fold_plan, holdout_plan
from tierwise.learning.outcomes import OutcomeTable

TARGETS = (0.95, 0.99, 1.0)


@dataclass(frozen=True, slots=True)
class Plan:
    """Evaluated pool rows; per fit its training rows; per evaluated row its fit."""

    rows: Index
    train: list[Index]
    part: Index
    names: list[str]
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Served:
    """One operating point's held-out decisions: per evaluated row the candidate run,
    the served model, the models called (in call order) and the cost; per fit and
    category the cascade chosen."""

    label: str
    param: float
    index: Index
    served: Index
    called: list[str]
    cost: Matrix
    chosen: list[dict[str, str]]


@dataclass(frozen=True)
class CascadeEval:
    """The `tierwise eval` result of the cascades, per evaluated row its category and
    fit, the nested target estimates, and what choosing the deployable policy needs."""

    result: EvalResult
    categories: list[str]
    folds: Index
    points: list[Served]
    settings: dict[str, Any] = field(default_factory=dict)
    nested: list[dict[str, Any]] = field(default_factory=list)
    pool: Pool | None = field(default=None, repr=False)
    deploy_rows: Index | None = field(default=None, repr=False)
    options: Settings = field(default_factory=Settings)


def evaluate_cascades(
    table: OutcomeTable,
    answers: AnswerTable,
    *,
    folds: int = 5,
    seed: int = 0,
    holdout_by: str | None = None,
    **options: Any,
) -> CascadeEval:
    """Held-out operating points on one table: K folds grouped by text, or each group
    of `holdout_by` (e.g. `source_benchmark`) held out in turn. `options`: the fields of
    `Settings`."""
    settings = Settings(seed=seed, **_tupled(options))
    sub = table.subset(_complete_rows(table))
    texts = aligned(answers, sub.prompt_ids).texts
    if holdout_by is None:
        split = fold_plan(sub, np.arange(len(sub)), folds, seed)
    else:
        split = holdout_plan(sub, holdout_by, None, seed)
    plan = Plan(split.rows, split.train, split.part, split.names, split.info)
    s = _strong(sub, settings.strong)
    data = {"hash": table.content_hash, "prompts": len(table), "evaluated": int(plan.rows.size)}
    return _evaluate(sub, texts, s, plan, settings, data, answers, np.arange(len(sub)))


def evaluate_on_test(
    test: OutcomeTable, train: OutcomeTable, answers: AnswerTable, **options: Any
) -> CascadeEval:
    """Choose on every complete row of `train`; measure on the complete rows of `test`
    whose id and text `train` lacks."""
    settings = Settings(**_tupled(options))
    if list(train.models) != list(test.models):
        raise ValueError("the training table's models differ from the evaluated table's")
    train_sub = train.subset(_complete_rows(train))
    test_sub = test.subset(evaluated_rows(test, train))
    pooled = _concat(train_sub, test_sub)
    texts = aligned(answers, pooled.prompt_ids).texts
    rows = np.arange(len(train_sub), len(pooled))
    info = {"kind": "separate_train_table", "train_hash": train.content_hash}
    plan = Plan(rows, [np.arange(len(train_sub))], np.zeros(len(rows), np.intp), ["all"], info)
    data = {
        "hash": test.content_hash,
        "prompts": len(test),
        "evaluated": len(rows),
        "train_prompts": len(train_sub),
        "seen_in_train": int(len(_complete_rows(test)) - len(rows)),
    }
    s = _strong(train_sub, settings.strong)
    return _evaluate(pooled, texts, s, plan, settings, data, answers, plan.train[0])


def _tupled(options: dict[str, Any]) -> dict[str, Any]:
    keys = ("weights", "choice_weights", "targets", "fixed")
    return {k: tuple(v) if k in keys else v for k, v in options.items()}


def _strong(table: OutcomeTable, strong: str | None) -> int:
    return pick_models(table, strong, None)[0]


def _complete_rows(table: OutcomeTable) -> Index:
    rows: Index = np.flatnonzero(~np.isnan(table.scores).any(axis=1))
    if not rows.size:
        raise ValueError("no prompt where every model has a score")
    return rows


def _concat(a: OutcomeTable, b: OutcomeTable) -> OutcomeTable:
    return OutcomeTable(
        a.prompt_ids + b.prompt_ids,
        a.texts + b.texts,
        a.sources + b.sources,
        list(a.models),
        np.vstack([a.scores, b.scores]),
        np.vstack([a.costs, b.costs]),
        a.content_hash,
    )


def _evaluate(
    table: OutcomeTable,
    texts: list[list[str]],
    s: int,
    plan: Plan,
    settings: Settings,
    data: dict[str, Any],
    answers: AnswerTable,
    deploy_rows: Index,
) -> CascadeEval:
    costs, unit = eval_costs(table, s)
    codes = answer_codes(texts, table.texts)
    pool = build_pool(table, codes, costs, s, plan.train, settings)
    sums = [totals(pool, train) for train in plan.train]
    served = [_weight_point(pool, plan, sums, w) for w in settings.weights]
    targeted, choices = _target_points(pool, plan, settings)
    served += targeted
    served += [_fixed_point(pool, plan, k) for k in range(len(settings.fixed))]
    result = _result(pool, plan, served, unit, data)
    settings_json = {
        "answers_hash": answers.content_hash,
        "answers_skipped": answers.skipped,
        "cheap_share": settings.cheap_share,
        "max_group": settings.max_group,
        "inner_folds": settings.inner_folds,
        "candidates": pool.fixed_start,
    }
    nested = [
        _nested(pool, plan, p, [c[t] for c in choices], settings) for t, p in enumerate(targeted)
    ]
    categories = [pool.categories[r] for r in plan.rows.tolist()]
    return CascadeEval(
        result, categories, plan.part, served, settings_json, nested, pool, deploy_rows, settings
    )


def _result(
    pool: Pool, plan: Plan, served: list[Served], unit: str, data: dict[str, Any]
) -> EvalResult:
    rows, table, s = plan.rows, pool.table, pool.strong
    scores, costs = table.scores[rows], pool.costs[rows]
    points = [_point(p, scores, table.models, s) for p in served]
    baselines = baseline_points(scores, costs, table.models, s)
    cheap = min((j for j in range(len(table.models)) if j != s), key=lambda j: costs[:, j].mean())
    return EvalResult(
        "cascade",
        data,
        plan.info,
        list(table.models),
        table.models[s],
        table.models[cheap],
        unit,
        points,
        baselines,
        m.quality_targets(points, baselines[s], TARGETS),
        aiq_summary(points, baselines, len(table.models)),
        None,
        [table.prompt_ids[r] for r in rows.tolist()],
        [(p.label, p.param, p.served) for p in served],
    )


def _weight_point(pool: Pool, plan: Plan, sums: list[Totals], weight: float) -> Served:
    """Choose per fit and category on the training rows; run on the held-out rows."""
    index = np.zeros(len(plan.rows), dtype=np.intp)
    chosen = []
    for k, fit in enumerate(sums):
        picks = pick_from(fit, weight)
        at = plan.part == k
        index[at] = apply(pool, picks, plan.rows[at])
        chosen.append({c: pool.sim.cascades[v].label for c, v in picks.items()})
    return _served(pool, plan, f"cascade w={weight:g}", weight, index, chosen)


def _target_points(
    pool: Pool, plan: Plan, settings: Settings
) -> tuple[list[Served], list[list[Choice]]]:
    """Per target, per fit the weight chosen by inner cross-validation, run on the
    fit's held-out rows."""
    choices = [
        choose_for_targets(
            pool,
            train,
            settings.targets,
            settings.choice_weights,
            settings.inner_folds,
            settings.seed,
        )
        for train in plan.train
    ]
    out = []
    for t, target in enumerate(settings.targets):
        index = np.zeros(len(plan.rows), dtype=np.intp)
        for k, fit in enumerate(choices):
            at = plan.part == k
            index[at] = apply(pool, fit[t].picks, plan.rows[at])
        chosen = [{c: pool.sim.cascades[v].label for c, v in f[t].picks.items()} for f in choices]
        out.append(_served(pool, plan, f"target {target:g}", target, index, chosen))
    return out, choices


def _fixed_point(pool: Pool, plan: Plan, k: int) -> Served:
    number = pool.fixed_start + k
    index = np.full(len(plan.rows), number, dtype=np.intp)
    label = pool.sim.cascades[number].label
    return _served(pool, plan, label, float(k), index, [{"*": label} for _ in plan.train])


def _served(
    pool: Pool, plan: Plan, label: str, param: float, index: Index, chosen: list[dict[str, str]]
) -> Served:
    """Per evaluated row, the run of the candidate `index[i]`."""
    runs, cascades, models = pool.sim.runs, pool.sim.cascades, pool.models
    pairs = list(zip(plan.rows.tolist(), index.tolist(), strict=True))
    served = np.array([runs[c].served[r] for r, c in pairs], dtype=np.intp)
    cost: Matrix = pool.sim.cost[index, plan.rows]
    called = [
        "+".join(n for n in cascades[c].call_order() if runs[c].called[r, models.index(n)])
        for r, c in pairs
    ]
    return Served(label, param, index, served, called, cost, chosen)


def _point(p: Served, scores: Matrix, models: Sequence[str], s: int) -> Point:
    rows = np.arange(len(p.served))
    counts = np.bincount(p.served, minlength=len(models)) / max(len(rows), 1)
    strong_calls = float(np.mean([models[s] in c.split("+") for c in p.called]))
    return Point(
        p.label,
        p.param,
        m.nanmean(scores[rows, p.served]),
        m.nanmean(p.cost),
        strong_calls,
        {name: float(x) for name, x in zip(models, counts, strict=True)},
    )


def _nested(
    pool: Pool, plan: Plan, point: Served, choices: list[Choice], settings: Settings
) -> dict[str, Any]:
    """A target point's pooled held-out shares of the strong model's quality and cost
    with bootstrap intervals, and per fit the weight chosen and its shares."""
    rows, s = plan.rows, pool.strong
    quality = pool.table.scores[rows, point.served]
    strong_quality, strong_cost = pool.table.scores[rows, s], pool.costs[rows, s]
    rng = np.random.default_rng(settings.seed)
    fits = []
    for k, (name, choice) in enumerate(zip(plan.names, choices, strict=True)):
        at = plan.part == k
        fits.append(
            {
                "fit": name,
                "prompts": int(at.sum()),
                "weight": choice.weight,
                "inner_quality_share": choice.inner_quality,
                "inner_cost_share": choice.inner_cost,
                "quality_share": _ratio(quality[at], strong_quality[at]),
                "cost_share": _ratio(point.cost[at], strong_cost[at]),
                "chosen": point.chosen[k],
            }
        )
    return {
        "target": point.param,
        "label": point.label,
        "quality_share": _ratio(quality, strong_quality),
        "quality_share_ci": interval(quality, strong_quality, rng, settings.bootstrap),
        "cost_share": _ratio(point.cost, strong_cost),
        "cost_share_ci": interval(point.cost, strong_cost, rng, settings.bootstrap),
        "fits": fits,
    }


def _ratio(values: Matrix, reference: Matrix) -> float:
    total = float(reference.sum())
    return float(values.sum()) / total if total else float("nan")


def interval(
    values: Matrix, reference: Matrix, rng: np.random.Generator, samples: int
) -> list[float]:
    """95% percentile interval of sum(values) / sum(reference) over prompts resampled
    with replacement (values and reference paired per prompt)."""
    n = len(values)
    if not n or samples < 1:
        return [float("nan"), float("nan")]
    ratios = np.empty(samples)
    for b in range(samples):
        drawn = rng.integers(0, n, n)
        total = reference[drawn].sum()
        ratios[b] = values[drawn].sum() / total if total else np.nan
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return [float(low), float(high)]


def deployable(ev: CascadeEval, target: float) -> tuple[CascadePolicy, Choice]:
    """The policy to deploy for `target`: chosen (inner cross-validation for the weight)
    on every training row: the separate training table, or the whole table."""
    if ev.pool is None or ev.deploy_rows is None:
        raise ValueError("this evaluation keeps nothing to choose a policy from")
    o = ev.options
    choice = choose_for_targets(
        ev.pool, ev.deploy_rows, [target], o.choice_weights, o.inner_folds, o.seed
    )[0]
    return policy_of(ev.pool, choice.picks), choice
