"""Offline simulation of answer cascades (`tierwise.checks.cascade_policy`: a stage's
anchor answers, its other models are asked in order until `k` answers agree with the
anchor's, else the next stage or the final model runs) over per-prompt answers, scores
and costs: pure functions over arrays. Cost of a prompt = sum of the costs of every
model called; quality = the score of the answer served.

Choosing a cascade per prompt category (`select`) maximises quality - weight x cost /
reference cost over the given rows (the training folds), so each weight is one operating
point.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierwise.checks.cascade_policy import Cascade, Stage, parse_cascade
from tierwise.evaluation.answers import Codes

__all__ = [
    "Cascade",
    "Run",
    "Simulated",
    "Stage",
    "candidates",
    "cheap_models",
    "parse_cascade",
    "select",
    "simulate",
    "simulate_all",
]

Matrix = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Run:
    """Per prompt: the model whose answer is served, the models called and the cost."""

    served: Index
    called: Mask
    cost: Matrix


def simulate(cascade: Cascade, codes: Codes, costs: Matrix, models: Sequence[str]) -> Run:
    """Run `cascade` on every row of `codes` (normalised answers, -1 = none) and `costs`
    (both prompts x models, columns named by `models`)."""
    column = {name: j for j, name in enumerate(models)}
    unknown = [m for m in cascade.call_order() if m not in column]
    if unknown:
        raise ValueError(f"cascade {cascade.label!r} names unknown model {unknown[0]!r}")
    n = len(codes)
    served = np.full(n, column[cascade.final], dtype=np.intp)
    called = np.zeros(codes.shape, dtype=bool)
    waiting = np.ones(n, dtype=bool)
    for stage in cascade.stages:
        picked = _run_stage([column[m] for m in stage.models], stage.k, codes, called, waiting)
        accepted = picked >= 0
        served[accepted] = picked[accepted]
        waiting &= ~accepted
    called[waiting, column[cascade.final]] = True
    cost: Matrix = np.where(called, costs, 0.0).sum(axis=1)
    return Run(served, called, cost)


def _run_stage(group: list[int], k: int, codes: Codes, called: Mask, waiting: Mask) -> Index:
    """Call the anchor `group[0]` on the waiting rows, then the others in order while
    `k` agreeing answers are possible and not yet reached (marking `called`); per row
    the anchor's column where `k` answers agree with its valid answer, else -1."""
    anchor = group[0]
    called[waiting, anchor] = True
    answer = codes[:, anchor]
    valid = waiting & (answer >= 0)
    agree = valid.astype(np.intp)
    for position, j in enumerate(group[1:], start=1):
        asking = valid & (agree < k) & (agree + len(group) - position >= k)
        called[asking, j] = True
        agree += asking & (codes[:, j] == answer)
    picked: Index = np.where(valid & (agree >= k), anchor, -1).astype(np.intp)
    return picked


def candidates(
    cheap: Sequence[str], final: str, everyone: Sequence[str], max_group: int = 3
) -> list[Cascade]:
    """Every single model (always served), then one stage of 1..`max_group` cheap
    models in every order escalating to `final`: one model with k = 1 (its valid
    answer is served), two with k = 2, three or more with k from a majority to all."""
    out = [Cascade((), m) for m in everyone]
    for size in range(1, max_group + 1):
        lowest = size if size <= 2 else size // 2 + 1
        for group in itertools.permutations(cheap, size):
            out += [Cascade((Stage(group, k),), final) for k in range(lowest, size + 1)]
    return out


@dataclass(frozen=True, slots=True)
class Simulated:
    """Every candidate run on every row: `quality` and `cost` are (candidates, rows)."""

    cascades: list[Cascade]
    runs: list[Run]
    quality: Matrix
    cost: Matrix


def simulate_all(
    cascades: Sequence[Cascade],
    codes: Codes,
    scores: Matrix,
    costs: Matrix,
    models: Sequence[str],
) -> Simulated:
    runs = [simulate(c, codes, costs, models) for c in cascades]
    rows = np.arange(len(codes))
    quality = np.array([scores[rows, r.served] for r in runs], dtype=np.float64)
    cost = np.array([r.cost for r in runs], dtype=np.float64)
    return Simulated(list(cascades), runs, quality, cost)


def select(
    sim: Simulated,
    train: Index,
    categories: Sequence[str],
    weight: float,
    reference_cost: float,
    allowed: Mask | None = None,
) -> dict[str, int]:
    """Per category of the `train` rows: the index of the allowed candidate with the
    highest total quality - weight x cost / reference_cost (ties: the cheaper, then
    the earlier)."""
    labels = np.asarray(categories)
    ok = np.ones(len(sim.cascades), dtype=bool) if allowed is None else allowed
    chosen: dict[str, int] = {}
    for name in sorted(set(labels[train].tolist())):
        rows = train[labels[train] == name]
        quality, cost = sim.quality[:, rows].sum(axis=1), sim.cost[:, rows].sum(axis=1)
        value = np.where(ok, quality - weight * cost / reference_cost, -np.inf)
        order = np.lexsort((np.arange(len(value)), cost, -value))
        chosen[name] = int(order[0])
    return chosen


def cheap_models(mean_costs: Mapping[str, float], strong: str, max_share: float) -> list[str]:
    """Models other than `strong` whose mean cost is at most `max_share` of its."""
    limit = max_share * mean_costs[strong]
    return [m for m, c in mean_costs.items() if m != strong and c <= limit]
