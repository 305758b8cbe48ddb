"""How an evaluation splits a table: K folds grouped by prompt text, a separate
training table, or leave-one-group-out by benchmark, and the per-group metrics of
the last.

Leave-one-group-out (`holdout_plan`): a row's group is the first '/'-separated part
of its `source_benchmark` after the parts that every row shares (`mmlu/anatomy` is in
`mmlu`; in a table where every source starts with `routerbench/`, `routerbench/mbpp`
is in `mbpp`). Each group is evaluated by a router fitted on the other groups only;
training rows whose text also occurs in the held-out group are dropped, and rows
marked `contaminated_in_routellm_train=1` are left out of training and evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.evaluation import metrics as m
from tierwise.evaluation.metrics import Index, Matrix
from tierwise.learning.outcomes import CONTAMINATED, OutcomeTable
from tierwise.learning.train import fold_indices

if TYPE_CHECKING:
    from tierwise.evaluation.runner import Routed

GROUP_COLUMNS = ("source_benchmark",)
NO_SOURCE = "(no source)"
QUALITY_LEVELS = (0.95,)


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """Evaluated table rows; per fit its training rows; per evaluated row the index
    of the fit that held it out (`part`); the name of each fit; the split as JSON."""

    rows: Index
    train: list[Index]
    part: Index
    names: list[str]
    info: dict[str, Any]


def complete_rows(table: OutcomeTable) -> Index:
    """Rows where every model has a score."""
    rows: Index = np.flatnonzero(~np.isnan(table.scores).any(axis=1))
    return rows


def fold_plan(table: OutcomeTable, rows: Index, folds: int, seed: int) -> SplitPlan:
    """K folds grouped by prompt text; `rows` are evaluated by the fold holding them."""
    splits = fold_indices(table, folds, seed)
    fold_of = np.full(len(table), -1, dtype=np.intp)
    for fold, (_, test) in enumerate(splits):
        fold_of[test] = fold
    info = {"kind": "folds", "folds": folds, "seed": seed, "grouped_by": "prompt text"}
    names = [str(k) for k in range(folds)]
    return SplitPlan(rows, [train for train, _ in splits], fold_of[rows], names, info)


def separate_plan(rows: Index, train_hash: str) -> SplitPlan:
    """Trained on another table: no fit on this one."""
    info = {"kind": "separate_train_table", "train_hash": train_hash}
    return SplitPlan(rows, [], np.zeros(len(rows), dtype=np.intp), ["all"], info)


def group_names(sources: Sequence[str]) -> list[str]:
    """Each row's group: the first '/'-separated part of its source after the parts
    shared by every row."""
    parts = [s.strip().split("/") for s in sources]
    depth = 0
    while all(len(p) > depth + 1 for p in parts) and len({p[depth] for p in parts}) == 1:
        depth += 1
    return [p[depth] if len(p) > depth and p[depth] else NO_SOURCE for p in parts]


def holdout_plan(table: OutcomeTable, by: str, only: str | None, seed: int) -> SplitPlan:
    """Each group (or only `only`) evaluated by a fit on the other groups."""
    if by not in GROUP_COLUMNS:
        raise ValueError(f"cannot hold out by {by!r}; known: {', '.join(GROUP_COLUMNS)}")
    names = np.array(group_names(table.sources))
    known = sorted(set(names.tolist()))
    if len(known) < 2:
        raise ValueError(f"holding out by {by} needs two groups or more; the table has {known}")
    if only is not None and only not in known:
        raise ValueError(f"no group {only!r} in {by}; groups: {', '.join(known)}")
    flagged = table.contaminated
    excluded = np.zeros(len(table), dtype=bool) if flagged is None else flagged
    complete = np.zeros(len(table), dtype=bool)
    complete[complete_rows(table)] = True
    held = [g for g in known if only in (None, g)]
    part = np.full(len(table), -1, dtype=np.intp)
    train, groups = [], {}
    for k, group in enumerate(held):
        inside = names == group
        texts = {table.texts[i] for i in np.flatnonzero(inside)}
        unseen = np.array([t not in texts for t in table.texts], dtype=bool)
        train.append(np.flatnonzero(~inside & ~excluded & unseen))
        part[inside & complete & ~excluded] = k
        groups[group] = {"test_prompts": int((part == k).sum()), "train_prompts": len(train[k])}
    rows: Index = np.flatnonzero(part >= 0)
    if not rows.size:
        raise ValueError("no prompt left to evaluate (every model scored, not excluded)")
    info = _holdout_info(by, only, seed, groups, flagged)
    return SplitPlan(rows, train, part[rows], held, info)


def _holdout_info(
    by: str, only: str | None, seed: int, groups: dict[str, Any], flagged: Any
) -> dict[str, Any]:
    excluded = None if flagged is None else {"column": CONTAMINATED, "rows": int(flagged.sum())}
    return {
        "kind": "holdout",
        "by": by,
        "grouped_by": f"first part of {by} before '/', after parts shared by every row",
        "held_out": only if only is not None else "each group",
        "groups": groups,
        "excluded": excluded,
        "seed": seed,
    }


def group_metrics(
    plan: SplitPlan,
    scores: Matrix,
    costs: Matrix,
    routed: Routed,
    models: Sequence[str],
    s: int,
    c: int,
) -> dict[str, dict[str, Any]]:
    """Per held-out group: prompts, the cheapest swept point at each quality target
    and, with two models, APGR (with a bootstrap 95% interval seeded by the plan's
    seed), CPT and the share of strong calls at 95% of the strong model's quality, for
    the router and for random routing."""
    out: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(plan.info.get("seed", 0))
    for k, name in enumerate(plan.names):
        at = plan.part == k
        if not at.any():
            continue
        choices = [(label, param, choice[at]) for label, param, choice in routed.choices]
        points = m.sweep(scores[at], costs[at], choices, models, s)
        always = np.full(int(at.sum()), s, dtype=np.intp)
        strong = m.point("strong", s, scores[at], costs[at], always, models, s)
        entry: dict[str, Any] = {"prompts": int(at.sum())}
        entry["targets"] = m.quality_targets(points, strong)
        if len(models) == 2:
            two = _two_model(scores[at], routed.preference[at], routed.groups[at], s, c)
            entry.update(two, apgr_ci=apgr_interval(scores[at], routed.preference[at], s, c, rng))
        out[name] = entry
    return out


def _two_model(scores: Matrix, preference: Matrix, groups: Index, s: int, c: int) -> dict[str, Any]:
    weak, strong = scores[:, c], scores[:, s]
    router = m.two_model_summary(weak, strong, preference, groups)
    flat = np.zeros(len(scores))
    random = m.two_model_summary(weak, strong, flat, np.zeros(len(scores), dtype=np.intp))
    return {
        "quality_weak": router["quality_weak"],
        "quality_strong": router["quality_strong"],
        "apgr": router["apgr"],
        "cpt": router["cpt"],
        "strong_share_at_quality": share_at_quality(router),
        "random": {
            "apgr": random["apgr"],
            "cpt": random["cpt"],
            "strong_share_at_quality": share_at_quality(random),
        },
    }


def apgr_interval(
    scores: Matrix, preference: Matrix, s: int, c: int, rng: np.random.Generator, samples: int = 200
) -> tuple[float, float]:
    """95% percentile interval of APGR over prompts resampled with replacement."""
    n = len(scores)
    values = np.empty(samples)
    for b in range(samples):
        pick = rng.integers(0, n, n)
        weak, strong = scores[pick, c], scores[pick, s]
        curve = m.gain_curve(weak, strong, preference[pick], m.SHARES)
        values[b] = m.apgr(m.pgr(curve, float(weak.mean()), float(strong.mean())))
    if np.isnan(values).all():
        return math.nan, math.nan
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def share_at_quality(summary: dict[str, Any]) -> dict[str, float | None]:
    """The smallest share of strong calls on the curve whose quality reaches each
    level times the strong model's quality (None when never)."""
    curve = np.array(summary["curve"], dtype=np.float64)
    target = float(summary["quality_strong"])
    out: dict[str, float | None] = {}
    for level in QUALITY_LEVELS:
        reached = np.flatnonzero(curve[:, 1] >= level * target - 1e-12)
        out[f"{level:.0%}"] = float(curve[reached[0], 0]) if len(reached) else None
    return out
