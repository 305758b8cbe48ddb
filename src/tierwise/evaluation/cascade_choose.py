"""Choosing answer cascades on training rows only.

A `Pool` holds every candidate cascade simulated on every row (simulating a row uses
only that row's answers and costs; what is chosen depends only on the training rows'
scores). For a cost weight w, `pick` chooses per prompt category, and for `*` (any
category the training rows lack) over all of them, the allowed candidate with the best
quality - w x cost / (the strong model's mean training cost); allowed: single models,
and stages of models whose mean training cost is at most `cheap_share` of the strong
model's. For a quality target, `choose_for_targets` runs an inner cross-validation on
the training rows (grouped by prompt text): the weight whose inner held-out quality
reaches the target share of the strong model's at the least inner held-out cost (none
reaching it: the best quality; ties: the smallest weight) is then applied to all the
training rows. The weights it compares are exact, not a grid: a group's pick changes
only where the upper envelope of its candidates' lines quality - w x cost / reference
turns (`breakpoints`), so one weight inside each interval between the turns of every
group of the inner folds and of all the training rows (0, the midpoints, and twice
the last turn) covers every distinct set of picks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tierwise.checks.cascade_policy import ANY, Cascade, CascadePolicy
from tierwise.checks.normalise import category
from tierwise.evaluation.answers import Codes
from tierwise.evaluation.cascade import (
    Index,
    Mask,
    Matrix,
    Simulated,
    candidates,
    cheap_models,
    simulate_all,
)
from tierwise.learning.outcomes import OutcomeTable
from tierwise.learning.train import fold_indices

WEIGHTS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.09, 0.11, 0.13, 0.15)
WEIGHTS += (0.16, 0.17, 0.18, 0.19, 0.2, 0.22, 0.25, 0.3, 0.4, 0.6, 1.0)
CHOSEN_TARGETS = (0.95, 1.0)


@dataclass(frozen=True, slots=True)
class Settings:
    """What an evaluation chooses from and how: the final model (None: the best mean
    score), the cost weights of the reported per-weight points, the weights a target's
    choice compares (None: the exact set, `exact_weights`), the quality targets, the
    candidates' shape, the inner folds, the seed (folds and bootstrap), fixed cascades
    and bootstrap samples."""

    strong: str | None = None
    weights: tuple[float, ...] = WEIGHTS
    choice_weights: tuple[float, ...] | None = None
    targets: tuple[float, ...] = CHOSEN_TARGETS
    cheap_share: float = 0.25
    max_group: int = 3
    inner_folds: int = 5
    seed: int = 0
    fixed: tuple[Cascade, ...] = ()
    bootstrap: int = 1000


Picks = dict[str, int]


@dataclass(frozen=True, slots=True)
class Pool:
    """The candidates simulated on every row of `table` (its `costs` with empty cells
    filled), and the first index of the fixed cascades (evaluated, never chosen)."""

    table: OutcomeTable
    costs: Matrix
    strong: int
    sim: Simulated
    categories: list[str]
    cheap_share: float
    fixed_start: int

    @property
    def models(self) -> list[str]:
        return list(self.table.models)


@dataclass(frozen=True, slots=True)
class Choice:
    """A weight chosen for a target, its picks on the training rows, and its inner
    held-out quality and cost as shares of the strong model's."""

    target: float
    weight: float
    picks: Picks
    inner_quality: float
    inner_cost: float


def build_pool(
    table: OutcomeTable,
    codes: Codes,
    costs: Matrix,
    strong: int,
    trains: Sequence[Index],
    settings: Settings,
) -> Pool:
    """Candidates from the models cheap on any of the training row sets `trains`."""
    cheap_share, max_group, fixed = settings.cheap_share, settings.max_group, settings.fixed
    name = table.models[strong]
    cheap: set[str] = set()
    for train in trains:
        means = dict(zip(table.models, costs[train].mean(axis=0).tolist(), strict=True))
        cheap |= set(cheap_models(means, name, cheap_share))
    union = [m for m in table.models if m in cheap]
    chosen_from = candidates(union, name, table.models, max_group)
    sim = simulate_all(chosen_from + list(fixed), codes, table.scores, costs, table.models)
    categories = [category(t) for t in table.texts]
    return Pool(table, costs, strong, sim, categories, cheap_share, len(chosen_from))


def allowed(pool: Pool, train: Index) -> Mask:
    """Candidates a choice on `train` may take (never the fixed cascades)."""
    means = dict(zip(pool.models, pool.costs[train].mean(axis=0).tolist(), strict=True))
    strong = pool.models[pool.strong]
    cheap = set(cheap_models(means, strong, pool.cheap_share))
    ok = [
        k < pool.fixed_start
        and (not c.stages or all(m in cheap or m == strong for m in c.call_order()))
        for k, c in enumerate(pool.sim.cascades)
    ]
    return np.array(ok, dtype=bool)


@dataclass(frozen=True, slots=True)
class Totals:
    """Per group of a training set (its categories, then `*`: all of it), each
    candidate's total quality and cost, what it may choose, and the reference cost."""

    groups: list[str]
    quality: Matrix
    cost: Matrix
    ok: Mask
    reference: float


def totals(pool: Pool, train: Index) -> Totals:
    labels = np.asarray(pool.categories)[train]
    groups = sorted(set(labels.tolist()))
    member = np.stack([labels == g for g in groups] + [np.ones(len(train), dtype=bool)], axis=1)
    weights = member.astype(np.float64)
    quality = (pool.sim.quality[:, train] @ weights).T
    cost = (pool.sim.cost[:, train] @ weights).T
    reference = float(pool.costs[train, pool.strong].mean()) or 1.0
    return Totals([*groups, ANY], quality, cost, allowed(pool, train), reference)


def pick_from(sums: Totals, weight: float) -> Picks:
    """Per group, the allowed candidate with the highest total quality - weight x
    cost / reference (ties: the cheaper, then the earlier), as `select` chooses."""
    chosen = pick_indices(sums, np.array([weight]))[0]
    return dict(zip(sums.groups, chosen.tolist(), strict=True))


def pick_indices(sums: Totals, weights: Matrix, chunk: int = 64) -> Index:
    """`pick_from` at each of `weights`: (weights, groups) candidate indices."""
    out = np.empty((len(weights), len(sums.groups)), dtype=np.intp)
    for start in range(0, len(weights), chunk):
        w = weights[start : start + chunk, None, None]
        value = sums.quality[None] - w * sums.cost[None] / sums.reference
        value = np.where(sums.ok, value, -np.inf)
        top = value.max(axis=2, keepdims=True)
        cost = np.where(value == top, sums.cost[None], np.inf)
        out[start : start + chunk] = cost.argmin(axis=2)
    return out


def breakpoints(sums: Totals) -> Matrix:
    """Every weight > 0 at which some group's pick changes."""
    slopes = sums.cost[:, sums.ok] / sums.reference
    found = [_corners(q, c) for q, c in zip(sums.quality[:, sums.ok], slopes, strict=True)]
    return np.unique(np.concatenate([np.zeros(0), *found]))


def _corners(quality: Matrix, slope: Matrix) -> Matrix:
    """The weights w > 0 where the line with the highest quality - w x slope (ties:
    the smaller slope) changes: the turns of the upper envelope, walked from w = 0."""
    best = int(np.lexsort((slope, -quality))[0]) if quality.size else -1
    at, turns = 0.0, []
    while best >= 0:
        cheaper = np.flatnonzero(slope < slope[best])
        if not cheaper.size:
            break
        cross = (quality[best] - quality[cheaper]) / (slope[best] - slope[cheaper])
        cross = np.maximum(cross, at)
        first = cheaper[cross == cross.min()]
        best, at = int(first[np.argmin(slope[first])]), float(cross.min())
        turns.append(at)
    return np.asarray([t for t in turns if t > 0.0], dtype=np.float64)


def exact_weights(sums: Sequence[Totals]) -> Matrix:
    """One weight inside each interval between the turns of every group of `sums`:
    0, the midpoints and twice the last turn, so that every distinct combination of
    their picks is found at one of them. Turns within a relative 1e-9 of the one
    before are one turn computed twice with rounding (equal lines over other rows)."""
    turns = np.unique(np.concatenate([np.zeros(0), *(breakpoints(s) for s in sums)]))
    if not turns.size:
        return np.zeros(1)
    turns = turns[np.concatenate([[True], np.diff(turns) > 1e-9 * turns[1:]])]
    middles = (turns[:-1] + turns[1:]) / 2
    return np.concatenate([[0.0], middles, turns[-1:] * 2])


def pick(pool: Pool, train: Index, weight: float) -> Picks:
    """Per category of `train`, and for `*`, the candidate chosen at `weight`."""
    return pick_from(totals(pool, train), weight)


def apply(pool: Pool, picks: Picks, rows: Index) -> Index:
    """The candidate each of `rows` runs under `picks`."""
    chosen = [picks.get(pool.categories[r], picks[ANY]) for r in rows.tolist()]
    return np.asarray(chosen, dtype=np.intp)


def policy_of(pool: Pool, picks: Picks) -> CascadePolicy:
    """The picks as a policy the gateway runs (`tierwise.checks.cascade_policy`)."""
    return CascadePolicy({name: pool.sim.cascades[k] for name, k in sorted(picks.items())})


def inner_splits(pool: Pool, train: Index, folds: int, seed: int) -> list[tuple[Index, Index]]:
    """Folds of the `train` rows grouped by prompt text, as pool row indices."""
    inner = fold_indices(pool.table.subset(train), folds, seed)
    return [(train[a], train[b]) for a, b in inner]


def choose_for_targets(
    pool: Pool,
    train: Index,
    targets: Sequence[float],
    weights: Sequence[float] | None,
    folds: int,
    seed: int,
) -> list[Choice]:
    """Per target share of the strong model's quality, the weight chosen by inner
    cross-validation on `train` among `weights`, applied to all of `train`. None: the
    `exact_weights` of the inner folds and of `train`, so the choice is what any grid
    fine enough would choose."""
    splits = inner_splits(pool, train, folds, seed)
    sums = [totals(pool, inner_train) for inner_train, _ in splits]
    if weights is None:
        grid = exact_weights([*sums, totals(pool, train)])
    else:
        grid = np.asarray(weights, dtype=np.float64)
    quality, cost = inner_scores(pool, splits, sums, grid)
    out = []
    for target in targets:
        w = _cheapest_reaching(quality, cost, target)
        weight = float(grid[w])
        picks = pick(pool, train, weight)
        out.append(Choice(target, weight, picks, float(quality[w]), float(cost[w])))
    return out


def inner_scores(
    pool: Pool, splits: list[tuple[Index, Index]], sums: list[Totals], weights: Matrix
) -> tuple[Matrix, Matrix]:
    """Per weight, the inner held-out quality and cost as shares of the strong
    model's, each held-out row run under the picks of its fold's training rows."""
    held = np.concatenate([test for _, test in splits])
    strong_quality = pool.table.scores[held, pool.strong].sum()
    strong_cost = pool.costs[held, pool.strong].sum() or 1.0
    quality, cost = np.zeros(len(weights)), np.zeros(len(weights))
    for inner, (_, test) in zip(sums, splits, strict=True):
        chosen = pick_indices(inner, weights)
        group = np.arange(len(inner.groups))
        q, c = held_totals(pool, inner, test)
        quality += q[group, chosen].sum(axis=1)
        cost += c[group, chosen].sum(axis=1)
    return quality / strong_quality, cost / strong_cost


def held_totals(pool: Pool, sums: Totals, test: Index) -> tuple[Matrix, Matrix]:
    """Per group of `sums`, each candidate's total quality and cost over the `test`
    rows that run that group's pick (`apply`: their category's, else `*`'s)."""
    position = {name: g for g, name in enumerate(sums.groups)}
    any_group = position[ANY]
    group = [position.get(pool.categories[r], any_group) for r in test.tolist()]
    member = np.zeros((len(test), len(sums.groups)))
    member[np.arange(len(test)), group] = 1.0
    quality = (pool.sim.quality[:, test] @ member).T
    cost = (pool.sim.cost[:, test] @ member).T
    return quality, cost


def _cheapest_reaching(quality: Matrix, cost: Matrix, target: float) -> int:
    reached = np.flatnonzero(quality >= target - 1e-12)
    if not reached.size:
        return int(np.argmax(quality))
    order = np.lexsort((-quality[reached], cost[reached]))
    return int(reached[order[0]])
