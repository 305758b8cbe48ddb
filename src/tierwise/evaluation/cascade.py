"""Offline simulation of cascades over per-prompt answers, scores and costs: pure
functions over arrays.

A cascade is a list of stages and a final model. A stage is a group of models whose
normalised answers must agree: its models are called in order (a model called by an
earlier stage is not called again; its answer counts) until `k` of them give the same
answer, which is then served (the answer of the first of them), or until `k` can no longer
be reached, when the next stage runs. The final model is called when no stage accepted,
and its answer is always served. A stage of one model with k = 1 accepts any valid
answer (a parsable option label or code). Cost of a prompt = sum of the costs of every
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

from tierwise.evaluation.answers import Codes

Matrix = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Stage:
    """Models called in order; accept when `k` of them give the same answer."""

    models: tuple[str, ...]
    k: int

    def __post_init__(self) -> None:
        if not self.models or not 1 <= self.k <= len(self.models):
            raise ValueError(f"a stage needs 1 <= k <= {len(self.models)} models, got k={self.k}")

    @property
    def label(self) -> str:
        return f"{'+'.join(self.models)} {self.k}/{len(self.models)}"


@dataclass(frozen=True, slots=True)
class Cascade:
    stages: tuple[Stage, ...]
    final: str

    @property
    def label(self) -> str:
        return " > ".join([s.label for s in self.stages] + [self.final])

    def call_order(self) -> list[str]:
        """Every model the cascade may call, in the order it would call them."""
        names = [m for stage in self.stages for m in stage.models] + [self.final]
        return list(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class Run:
    """Per prompt: the model whose answer is served, the models called and the cost."""

    served: Index
    called: Mask
    cost: Matrix


def parse_cascade(spec: str) -> Cascade:
    """`m1+m2:2 > m3:1 > final`: stages `models:k` (k defaults to every model of the
    stage), separated by '>', the last part one model."""
    parts = [p.strip() for p in spec.split(">")]
    if not all(parts) or ":" in parts[-1] or "+" in parts[-1]:
        raise ValueError(f"bad cascade {spec!r}: use 'a+b:2 > c:1 > final' (final: one model)")
    stages = []
    for part in parts[:-1]:
        names, _, k = part.partition(":")
        models = tuple(n.strip() for n in names.split("+"))
        try:
            stages.append(Stage(models, int(k) if k.strip() else len(models)))
        except ValueError as exc:
            raise ValueError(f"bad cascade stage {part!r}: {exc}") from None
    return Cascade(tuple(stages), parts[-1])


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
    """Call `group` lazily on the waiting rows (marking `called`); per row the column
    whose answer is served, -1 where the stage did not accept."""
    n = len(codes)
    votes = np.zeros((n, codes.shape[1] + 1), dtype=np.intp)
    picked = np.full(n, -1, dtype=np.intp)
    active = waiting.copy()
    rows = np.arange(n)
    for position, j in enumerate(group):
        called[active, j] = True
        answer = codes[:, j]
        valid = active & (answer >= 0)
        votes[valid, answer[valid]] += 1
        reached = valid & (votes[rows, np.maximum(answer, 0)] >= k)
        picked[reached] = _first_with(group[: position + 1], codes, reached, answer)
        active &= ~reached
        active &= votes.max(axis=1) + (len(group) - position - 1) >= k
    return picked


def _first_with(group: list[int], codes: Codes, rows: Mask, answer: Index) -> Index:
    """For the rows in `rows`: the first column of `group` whose answer is `answer`."""
    columns = np.asarray(group, dtype=np.intp)
    same = codes[np.flatnonzero(rows)[:, None], columns[None, :]] == answer[rows, None]
    first: Index = columns[np.argmax(same, axis=1)]
    return first


def candidates(
    cheap: Sequence[str], final: str, everyone: Sequence[str], max_group: int = 3
) -> list[Cascade]:
    """Every single model (always accepted), then one stage of 1..`max_group` cheap
    models in every order, each k from a majority of the group (1 for one or two
    models) to all of it, escalating to `final`."""
    out = [Cascade((), m) for m in everyone]
    for size in range(1, max_group + 1):
        lowest = 1 if size <= 2 else size // 2 + 1
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
