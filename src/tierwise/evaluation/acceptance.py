"""Learned acceptance for one-stage cascades: call a category's cheap models, then decide
from their answers whether to serve the cheap answer or escalate to the strong model.

Per prompt category, the stage is the `size` most accurate cheap models on the training
rows (cheap: mean training cost at most `cheap_share` of the strong model's). The cheap
answer served is the plurality answer among them (ties: the earlier model's). Features
after the stage: per model, whether it gave that answer and whether it gave no answer;
the share of the stage giving it; the number of distinct answers. A two-output logistic
regression fitted on the training rows predicts P(the cheap answer is correct) and
P(the strong model's answer is correct); a held-out prompt is escalated when the
predicted gain exceeds `lam` x (the strong model's mean training cost in the category) /
(its mean training cost overall). Each `lam` is one operating point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tierwise.evaluation.answers import Codes
from tierwise.evaluation.cascade import Index, Matrix
from tierwise.learning.models import LogisticPredictor

LAMBDAS: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(61))


@dataclass(frozen=True, slots=True)
class Learned:
    """Held-out result per `lam`: `served` and `cost` are (lambdas, rows)."""

    lambdas: tuple[float, ...]
    served: Index
    cost: Matrix
    stages: list[dict[str, list[int]]]


def stage_features(codes: Codes, stage: Sequence[int]) -> tuple[Matrix, Index]:
    """Features of the rows of `codes` after calling the columns `stage`, and per row
    the column whose (plurality) answer would be served."""
    answers = codes[:, list(stage)]
    n, size = answers.shape
    tally = np.zeros((n, int(codes.max(initial=-1)) + 2))
    rows = np.arange(n)
    for k in range(size):
        valid = answers[:, k] >= 0
        tally[rows[valid], answers[valid, k]] += 1.0 + 1e-6 * (size - k)
    winner = tally.argmax(axis=1)
    agrees = (answers == winner[:, None]) & (answers >= 0)
    served = np.asarray(stage, dtype=np.intp)[np.argmax(agrees, axis=1)]
    share = agrees.sum(axis=1, keepdims=True) / size
    distinct = (tally > 0).sum(axis=1, keepdims=True) / size
    x = np.hstack([agrees, answers < 0, share, distinct]).astype(np.float64)
    return x, served


def pick_stage(
    scores: Matrix, costs: Matrix, rows: Index, strong: int, share: float, size: int
) -> list[int]:
    """The `size` most accurate models on `rows` whose mean cost there is at most
    `share` of the strong model's (ties: the cheaper, then the earlier)."""
    mean_cost = costs[rows].mean(axis=0)
    accuracy = scores[rows].mean(axis=0)
    cheap = [
        j
        for j in range(costs.shape[1])
        if j != strong and mean_cost[j] <= share * mean_cost[strong]
    ]
    cheap.sort(key=lambda j: (-accuracy[j], mean_cost[j], j))
    return cheap[:size]


def predicted_gain(
    codes: Codes,
    scores: Matrix,
    stage: Sequence[int],
    strong: int,
    train: Index,
    test: Index,
    l2: float,
) -> tuple[Matrix, Index]:
    """Per `test` row: predicted P(strong correct) - P(cheap answer correct), fitted on
    `train`, and the column of the cheap answer."""
    x_train, served_train = stage_features(codes[train], stage)
    x_test, served_test = stage_features(codes[test], stage)
    y = np.stack([scores[train, served_train], scores[train, strong]], axis=1)
    model = LogisticPredictor.fit(x_train.astype(np.float32), y, np.random.default_rng(0), l2=l2)
    p = model.predict(x_test.astype(np.float32))
    gain: Matrix = p[:, 1] - p[:, 0]
    return gain, served_test


@dataclass(frozen=True, slots=True)
class Inputs:
    codes: Codes
    scores: Matrix
    costs: Matrix
    categories: list[str]
    strong: int


def evaluate_learned(
    data: Inputs,
    splits: Sequence[tuple[Index, Index]],
    *,
    lambdas: Sequence[float] = LAMBDAS,
    cheap_share: float = 0.25,
    size: int = 2,
    l2: float = 0.01,
) -> Learned:
    """Held-out served column and cost per `lam` and row (see the module docstring)."""
    n = len(data.categories)
    served = np.full((len(lambdas), n), data.strong, dtype=np.intp)
    cost = np.tile(data.costs[:, data.strong], (len(lambdas), 1))
    limits = np.asarray(lambdas, dtype=np.float64)[:, None]
    labels = np.asarray(data.categories)
    stages = []
    for train, test in splits:
        overall = float(data.costs[train, data.strong].mean()) or 1.0
        chosen: dict[str, list[int]] = {}
        for name in sorted(set(labels[train].tolist())):
            tr, te = train[labels[train] == name], test[labels[test] == name]
            stage = pick_stage(data.scores, data.costs, tr, data.strong, cheap_share, size)
            chosen[name] = stage
            if not te.size or not stage:
                continue
            gain, cheap = predicted_gain(data.codes, data.scores, stage, data.strong, tr, te, l2)
            scale = float(data.costs[tr, data.strong].mean()) / overall
            accept = gain[None, :] <= limits * scale
            served[:, te] = np.where(accept, cheap[None, :], data.strong)
            paid = data.costs[te][:, stage].sum(axis=1)
            cost[:, te] = paid[None, :] + np.where(
                accept, 0.0, data.costs[te, data.strong][None, :]
            )
        stages.append(chosen)
    return Learned(tuple(lambdas), served, cost, stages)
