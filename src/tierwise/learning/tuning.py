"""Choose a learned router's hyperparameters and operating point on its training rows.

Candidates: each method (kNN: k; logistic: C; matrix factorisation: rank) over each
embedder. Each candidate is cross-validated on the training rows (K folds grouped by
prompt text); its held-out predictions give its exact operating curve
(`tierwise.evaluation.operating`: cost weights when costs are known, else a threshold on
the strong win rate between the cheap and the strong model), on which the cheapest
point reaching `target` x the strong model's quality is found. The candidate whose point
is cheapest wins (one reaching the target beats one that does not; then the better
quality); its point is the operating point stored with the router, and the router is
then fitted on every training row. Nothing outside `rows` is looked at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.evaluation.operating import Curve, Outcomes, pick, threshold_curve, weight_curve
from tierwise.learning.models import (
    Matrix,
    MFPredictor,
    Predictor,
    Vectors,
    choose,
    relative_costs,
    strong_win_rate,
)
from tierwise.learning.outcomes import OutcomeTable
from tierwise.learning.train import fold_indices

Index = npt.NDArray[np.intp]
Hyper = dict[str, float]
GRIDS: dict[str, tuple[Hyper, ...]] = {
    "knn": tuple({"k": float(k)} for k in (5, 10, 20, 35, 50, 75, 100, 150, 200, 300)),
    "logistic": tuple({"C": c} for c in (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)),
    "mf": tuple({"rank": float(r)} for r in (2, 4, 8, 16, 32)),
}
KNN_PRIOR = 1.0


@dataclass(frozen=True, slots=True)
class Setting:
    method: str
    embedder: str
    hyper: Mapping[str, float]

    def label(self) -> str:
        values = ", ".join(f"{k}={v:g}" for k, v in self.hyper.items())
        return f"{self.method} ({values}) on {self.embedder}"


@dataclass(frozen=True)
class Problem:
    """An outcome table with its embeddings per embedder (name as given), its costs
    (empty cells at the model's mean; a unit cost for the strong model when costs are
    unknown), the strong and cheap model, the quality target (share of the strong
    model's quality), the candidates and the inner folds."""

    table: OutcomeTable
    vectors: Mapping[str, Vectors]
    costs: Matrix
    unit: str
    strong: int
    cheap: int
    target: float
    methods: tuple[str, ...]
    folds: int = 5
    seed: int = 0
    partial: bool = False
    """Scores are sparse by nature (a request log labels the models it called): an
    operating point is judged on every row with a score, by the replay estimator
    (the mean over the rows where the chosen model's score is known), not only on
    rows where every model has one."""

    @property
    def knob(self) -> str:
        return "cost_weight" if self.unit == "usd_per_request" else "threshold"

    def settings(self, method: str, embedder: str) -> list[Setting]:
        return [Setting(method, embedder, h) for h in GRIDS[method]]

    def filled(self, rows: Index) -> Matrix:
        """The costs of `rows` with each empty cell at its model's mean over `rows`
        only (with unknown costs: the unit costs)."""
        if self.unit != "usd_per_request":
            return self.costs[rows]
        raw = self.table.costs[rows]
        means = np.nan_to_num(self.table.subset(rows).mean_costs(), nan=0.0)
        result: Matrix = np.where(np.isnan(raw), means[None, :], raw)
        return result

    def complete(self, rows: Index) -> Index:
        """The rows where every model has a score."""
        keep: Index = rows[~np.isnan(self.table.scores[rows]).any(axis=1)]
        return keep


@dataclass(frozen=True)
class Tried:
    """A candidate's cross-validated point: value, cost and quality shares of the
    strong model's, whether it met the target, and the interval of equal decisions."""

    setting: Setting
    value: float
    interval: tuple[float, float]
    cost_share: float
    quality_share: float
    met: bool


@dataclass(frozen=True)
class Selection:
    chosen: Tried
    tried: list[Tried]
    knob: str
    rows: int


def grid_predictions(
    method: str, grid: Sequence[Hyper], train: tuple[Vectors, Matrix], x_test: Vectors, seed: int
) -> list[Matrix]:
    """Predictions for `x_test` of `method` fitted on `train` at each grid point."""
    from tierwise.learning import sklearn_fit

    x, y = train
    if method == "knn":
        ks = [int(h["k"]) for h in grid]
        return sklearn_fit.knn_grid(x, y, x_test, ks, KNN_PRIOR)
    if method == "logistic":
        return sklearn_fit.logistic_grid(x, y, x_test, [h["C"] for h in grid])
    return [fit_setting(Setting(method, "", h), x, y, seed).predict(x_test) for h in grid]


def fit_setting(setting: Setting, x: Vectors, y: Matrix, seed: int) -> Predictor:
    """The request-path predictor of `setting` fitted on (x, y)."""
    from tierwise.learning import sklearn_fit

    h = setting.hyper
    if setting.method == "knn":
        return sklearn_fit.fit_knn(x, y, int(h["k"]), KNN_PRIOR)
    if setting.method == "logistic":
        return sklearn_fit.fit_logistic(x, y, h["C"])
    if setting.method == "mf":
        return MFPredictor.fit(x, y, np.random.default_rng(seed), rank=int(h["rank"]))
    raise ValueError(f"unknown method {setting.method!r}; known: {', '.join(GRIDS)}")


def train_relative(problem: Problem, rows: Index) -> Matrix:
    """Relative costs as a router fitted on `rows` stores them."""
    return relative_costs(problem.table.subset(rows).mean_costs())


def held_out(
    problem: Problem, rows: Index, method: str, embedder: str
) -> tuple[list[Matrix], Index, Index, Matrix]:
    """Cross-validated predictions on `rows` of every grid point: per grid point the
    predictions of the complete rows, their positions in `rows`, their fold, and the
    relative costs per fold."""
    table, x = problem.table, problem.vectors[embedder]
    grid = GRIDS[method]
    splits = fold_indices(table.subset(rows), problem.folds, problem.seed)
    preds = [np.zeros((len(rows), len(table.models))) for _ in grid]
    fold_of = np.zeros(len(rows), dtype=np.intp)
    relative = np.zeros((len(splits), len(table.models)))
    for k, (train, test) in enumerate(splits):
        tr, te = rows[train], rows[test]
        fold_of[test] = k
        relative[k] = train_relative(problem, tr)
        seed = problem.seed * 1000 + k
        got = grid_predictions(method, grid, (x[tr], table.scores[tr]), x[te], seed)
        for p, q in zip(preds, got, strict=True):
            p[test] = q
    known = ~np.isnan(table.scores[rows])
    keep = np.flatnonzero(known.any(axis=1) if problem.partial else known.all(axis=1))
    return [p[keep] for p in preds], keep, fold_of[keep], relative


def curve(
    problem: Problem, p: Matrix, rows: Index, groups: Index, relative: Matrix, costs: Matrix
) -> Curve:
    """The exact operating curve of predictions `p` for `rows` (costs: theirs)."""
    outcomes = Outcomes(problem.table.scores[rows], costs, problem.strong)
    if problem.knob == "cost_weight":
        return weight_curve(p, groups, relative, outcomes)
    win = strong_win_rate(p, problem.cheap, problem.strong)
    return threshold_curve(win, problem.cheap, outcomes)


def point_of(problem: Problem, c: Curve, rows: Index, costs: Matrix, setting: Setting) -> Tried:
    """The cheapest point of `c` reaching the target, as shares of the strong model's."""
    strong_scores = problem.table.scores[rows, problem.strong]
    known = strong_scores[~np.isnan(strong_scores)]
    strong_q = float(known.mean()) if known.size else float("nan")
    strong_c = float(costs[:, problem.strong].mean())
    judged = c.cautious() if problem.partial else c
    i = pick(judged, problem.target * strong_q)
    quality = float(c.quality[i]) / strong_q if strong_q else float("nan")
    met = bool(judged.quality[i] >= problem.target * strong_q - 1e-12)
    interval = (float(c.low[i]), float(c.high[i]))
    share = float(c.cost[i]) / strong_c if strong_c else float("nan")
    return Tried(setting, float(c.values[i]), interval, share, quality, met)


def select(problem: Problem, rows: Index) -> Selection:
    """Every candidate cross-validated on `rows`; the one with the cheapest point.
    Costs are filled from `rows` only: nothing outside them is looked at."""
    tried = []
    filled = problem.filled(rows)
    for method in problem.methods:
        for embedder in problem.vectors:
            preds, keep, groups, relative = held_out(problem, rows, method, embedder)
            kept, costs = rows[keep], filled[keep]
            for setting, p in zip(problem.settings(method, embedder), preds, strict=True):
                c = curve(problem, p, kept, groups, relative, costs)
                tried.append(point_of(problem, c, kept, costs, setting))
    best = min(tried, key=lambda t: (not t.met, t.cost_share if t.met else -t.quality_share))
    return Selection(best, tried, problem.knob, len(rows))


def decide(problem: Problem, p: Matrix, relative: Matrix, value: float) -> Index:
    """Choices at an operating point, as the learned router makes them."""
    if problem.knob == "cost_weight":
        return choose(p, relative, value)
    win = strong_win_rate(p, problem.cheap, problem.strong)
    picked: Index = np.where(win > value, problem.strong, problem.cheap).astype(np.intp)
    return picked


def selection_json(selection: Selection) -> dict[str, Any]:
    """The selection for the router file and reports."""

    def entry(t: Tried) -> dict[str, Any]:
        return {
            "method": t.setting.method,
            "embedder": t.setting.embedder,
            "hyperparameters": dict(t.setting.hyper),
            "value": t.value,
            "interval": list(t.interval),
            "cost_share_of_strong": t.cost_share,
            "quality_share_of_strong": t.quality_share,
            "met": t.met,
        }

    data = {
        "knob": selection.knob,
        "rows": selection.rows,
        "chosen": entry(selection.chosen),
        "tried": [entry(t) for t in selection.tried],
    }
    cleaned: dict[str, Any] = finite(data)
    return cleaned


def finite(value: Any) -> Any:
    """`value` with every infinite or NaN float (nested) as None, for JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
