"""Evaluate answer-agreement cascades on an outcome table and its answers file, on
prompts not used for choosing them.

Folds are grouped by prompt text (as for `tierwise eval`). On the training folds, per
prompt category (`choice2`, `choiceN`, `open`, from the prompt text) and per cost
weight, the candidate cascade with the best quality - weight x cost / (the strong
model's mean cost) is chosen; it then runs on the held-out fold. Candidates: every
single model, and one agreement stage of up to `max_group` cheap models (mean training
cost at most `cheap_share` of the strong model's) escalating to the strong model.
Cascades given as `fixed` are evaluated as they are, without choosing.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.evaluation import metrics as m
from tierwise.evaluation.answers import AnswerTable, answer_codes, category
from tierwise.evaluation.cascade import (
    Cascade,
    Index,
    Mask,
    Matrix,
    Run,
    Simulated,
    candidates,
    cheap_models,
    select,
    simulate_all,
)
from tierwise.evaluation.metrics import Point
from tierwise.evaluation.report import markdown, plot
from tierwise.evaluation.runner import (
    EvalResult,
    aiq_summary,
    baseline_points,
    eval_costs,
    pick_models,
    to_json,
)
from tierwise.learning.outcomes import OutcomeTable
from tierwise.learning.train import fold_indices

WEIGHTS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.09, 0.11, 0.13, 0.15)
WEIGHTS += (0.16, 0.17, 0.18, 0.19, 0.2, 0.22, 0.25, 0.3, 0.4, 0.6, 1.0)
TARGETS = (0.95, 0.99, 1.0)


@dataclass(frozen=True, slots=True)
class Served:
    """One operating point's held-out decisions: per row the served model, the models
    called (in call order) and the cost; per fold and category the cascade chosen."""

    label: str
    param: float
    served: Index
    called: list[str]
    cost: Matrix
    chosen: list[dict[str, str]]


@dataclass(frozen=True)
class CascadeEval:
    """The `tierwise eval` result of the cascades, and per row its category and fold."""

    result: EvalResult
    categories: list[str]
    folds: Index
    points: list[Served]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Setup:
    """What every operating point shares: the simulated candidates, the folds and
    which candidates each fold may choose."""

    sim: Simulated
    categories: list[str]
    splits: list[tuple[Index, Index]]
    allowed: list[Mask]
    reference: list[float]
    models: list[str]
    fixed_start: int


def evaluate_cascades(
    table: OutcomeTable,
    answers: AnswerTable,
    *,
    folds: int = 5,
    seed: int = 0,
    strong: str | None = None,
    weights: Sequence[float] = WEIGHTS,
    cheap_share: float = 0.25,
    max_group: int = 3,
    fixed: Sequence[Cascade] = (),
) -> CascadeEval:
    """Held-out operating points of cascades chosen per category and cost weight (and
    of the `fixed` cascades), with the baselines of `tierwise eval`."""
    rows = _complete_rows(table)
    sub = table.subset(rows)
    s, c = pick_models(sub, strong, None)
    costs, unit = eval_costs(sub, s)
    codes = answer_codes([answers.texts[i] for i in rows], sub.texts)
    setup = _setup(sub, codes, costs, s, folds, seed, cheap_share, max_group, fixed)
    served = [_chosen_point(setup, w, s) for w in weights]
    served += [_fixed_point(setup, k) for k in range(len(fixed))]
    points = [_point(p, sub.scores, sub.models, s) for p in served]
    baselines = baseline_points(sub.scores, costs, sub.models, s)
    result = EvalResult(
        "cascade",
        {"hash": table.content_hash, "prompts": len(table), "evaluated": len(rows)},
        {"kind": "folds", "folds": folds, "seed": seed, "grouped_by": "prompt text"},
        list(sub.models),
        sub.models[s],
        sub.models[c],
        unit,
        points,
        baselines,
        m.quality_targets(points, baselines[s], TARGETS),
        aiq_summary(points, baselines, len(sub.models)),
        None,
        list(sub.prompt_ids),
        [(p.label, p.param, p.served) for p in served],
    )
    settings = {"answers_hash": answers.content_hash, "cheap_share": cheap_share}
    settings |= {"max_group": max_group, "candidates": setup.fixed_start}
    return CascadeEval(result, setup.categories, _fold_of(setup), served, settings)


def _fold_of(setup: Setup) -> Index:
    fold_of = np.zeros(len(setup.categories), dtype=np.intp)
    for number, (_, test) in enumerate(setup.splits):
        fold_of[test] = number
    return fold_of


def _complete_rows(table: OutcomeTable) -> Index:
    rows: Index = np.flatnonzero(~np.isnan(table.scores).any(axis=1))
    if not rows.size:
        raise ValueError("no prompt where every model has a score")
    return rows


def _setup(
    sub: OutcomeTable,
    codes: Index,
    costs: Matrix,
    s: int,
    folds: int,
    seed: int,
    cheap_share: float,
    max_group: int,
    fixed: Sequence[Cascade],
) -> Setup:
    splits = fold_indices(sub, folds, seed)
    strong = sub.models[s]
    cheap_sets = []
    for train, _ in splits:
        means = dict(zip(sub.models, costs[train].mean(axis=0).tolist(), strict=True))
        cheap_sets.append(set(cheap_models(means, strong, cheap_share)))
    union = [name for name in sub.models if any(name in c for c in cheap_sets)]
    chosen_from = candidates(union, strong, sub.models, max_group)
    sim = simulate_all(chosen_from + list(fixed), codes, sub.scores, costs, sub.models)
    allowed = [
        np.array([_uses_only(c, cs, strong) for c in chosen_from] + [False] * len(fixed))
        for cs in cheap_sets
    ]
    reference = [float(costs[train, s].mean()) or 1.0 for train, _ in splits]
    categories = [category(t) for t in sub.texts]
    return Setup(sim, categories, splits, allowed, reference, list(sub.models), len(chosen_from))


def _uses_only(cascade: Cascade, cheap: set[str], strong: str) -> bool:
    return not cascade.stages or all(m in cheap or m == strong for m in cascade.call_order())


def _chosen_point(setup: Setup, weight: float, s: int) -> Served:
    """Choose per fold and category on the training rows; run on the held-out rows."""
    n = len(setup.categories)
    index = np.zeros(n, dtype=np.intp)
    chosen = []
    labels = np.asarray(setup.categories)
    for (train, test), ok, ref in zip(setup.splits, setup.allowed, setup.reference, strict=True):
        picks = select(setup.sim, train, setup.categories, weight, ref, ok)
        for row in test:
            index[row] = picks.get(str(labels[row]), s)
        chosen.append({k: setup.sim.cascades[v].label for k, v in picks.items()})
    return _served(setup, f"cascade w={weight:g}", weight, index, chosen)


def _fixed_point(setup: Setup, k: int) -> Served:
    number = setup.fixed_start + k
    index = np.full(len(setup.categories), number, dtype=np.intp)
    label = setup.sim.cascades[number].label
    return _served(setup, label, float(k), index, [{"*": label} for _ in setup.splits])


def _served(
    setup: Setup, label: str, param: float, index: Index, chosen: list[dict[str, str]]
) -> Served:
    """Per row, the run of the candidate `index[row]`."""
    rows = np.arange(len(index))
    runs: list[Run] = setup.sim.runs
    served = np.array([runs[c].served[r] for r, c in zip(rows, index, strict=True)])
    cost = setup.sim.cost[index, rows]
    called = [
        "+".join(
            name
            for name in setup.sim.cascades[c].call_order()
            if runs[c].called[r, setup.models.index(name)]
        )
        for r, c in zip(rows.tolist(), index.tolist(), strict=True)
    ]
    return Served(label, param, served.astype(np.intp), called, cost, chosen)


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


def chosen_summary(points: Sequence[Served]) -> list[dict[str, Any]]:
    """Per point and category: each cascade chosen and in how many folds."""
    out = []
    for p in points:
        per: dict[str, Counter[str]] = {}
        for fold in p.chosen:
            for name, label in fold.items():
                per.setdefault(name, Counter())[label] += 1
        out.append(
            {
                "label": p.label,
                "param": p.param,
                "chosen": {k: dict(v.most_common()) for k, v in sorted(per.items())},
            }
        )
    return out


def cascade_json(ev: CascadeEval) -> dict[str, Any]:
    """The `cascade` part of metrics.json."""
    return {
        **ev.settings,
        "weight_unit": "quality per mean cost of the strong model",
        "categories": dict(sorted(Counter(ev.categories).items())),
        "chosen": chosen_summary(ev.points),
    }


def cascade_markdown(data: dict[str, Any]) -> str:
    """report.md's section on the cascades chosen per point and category."""
    counts = ", ".join(f"{k} {v}" for k, v in data["categories"].items())
    lines = [
        "",
        "## Cascades",
        "",
        f"Prompt categories: {counts}. {data['candidates']} candidate cascades; cheap models "
        f"cost at most {data['cheap_share']:.0%} of the strong model's mean, groups of up to "
        f"{data['max_group']}. Chosen per category on the training folds (in how many folds):",
        "",
        "| point | category | cascade (folds) |",
        "| --- | --- | --- |",
    ]
    for point in data["chosen"]:
        for name, chosen in point["chosen"].items():
            text = "; ".join(f"{label} ({n})" for label, n in chosen.items())
            lines.append(f"| {point['label']} | {name} | {text} |")
    return "\n".join(lines) + "\n"


def write_cascade_decisions(ev: CascadeEval, path: Path) -> None:
    """decisions.csv: per point and prompt the served model, the models called (in
    call order, joined by '+'), the cost, the prompt's category and its fold."""
    ids = ev.result.prompt_ids
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt_id", "point", "model", "called", "cost", "category", "fold"])
        for p in ev.points:
            for row, pid in enumerate(ids):
                model = ev.result.models[int(p.served[row])]
                cost = float(p.cost[row])
                fold = int(ev.folds[row])
                writer.writerow(
                    [pid, p.label, model, p.called[row], repr(cost), ev.categories[row], fold]
                )


def write_cascade_outputs(ev: CascadeEval, out: Path) -> list[Path]:
    """metrics.json, decisions.csv, report.md and (with matplotlib) the plots of
    `tierwise eval`, with the cascades chosen; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    data = to_json(ev.result)
    data["cascade"] = cascade_json(ev)
    paths = [out / "metrics.json", out / "decisions.csv", out / "report.md"]
    paths[0].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    write_cascade_decisions(ev, paths[1])
    paths[2].write_text(markdown(data) + cascade_markdown(data["cascade"]))
    if importlib.util.find_spec("matplotlib") is not None:
        paths += plot(data, out)
    return paths
