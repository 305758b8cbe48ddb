"""The logistic router's fit with scikit-learn, as plain arrays: one `LogisticRegression`
(liblinear, L2; the intercept as a feature of value 10, so lightly penalised) per model on
its known outcomes; a score between 0 and 1 counts as a positive of that weight and a
negative of the rest. Both `LogisticPredictor.fit` and `tierwise train`'s search use it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.floating[Any]]


def logistic_path(
    x: Vectors, y: Matrix, cs: Sequence[float], max_iter: int = 1000
) -> tuple[Matrix, Matrix, npt.NDArray[np.int64]]:
    """(weights per C, bias per C, iterations per C) of every model's regression."""
    weights = np.zeros((len(cs), x.shape[1], y.shape[1]))
    bias = np.zeros((len(cs), y.shape[1]))
    iterations = np.zeros(len(cs), dtype=np.int64)
    for j in range(y.shape[1]):
        for i, (w, b, n) in enumerate(_column_path(x, y[:, j], cs, max_iter)):
            weights[i, :, j], bias[i, j] = w, b
            iterations[i] = max(iterations[i], n)
    return weights, bias, iterations


def _logit(p: float) -> float:
    clipped = min(max(p, 1e-3), 1 - 1e-3)
    return float(np.log(clipped / (1 - clipped)))


def _column_path(
    x: Vectors, target: Matrix, cs: Sequence[float], max_iter: int
) -> list[tuple[Matrix, float, int]]:
    """(weights, bias, iterations) of one model's regression at each C."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    known = ~np.isnan(target)
    y = target[known]
    if not y.size or y.min() == y.max():
        mean = float(y.mean()) if y.size else 0.5
        constant = _logit(mean)
        return [(np.zeros(x.shape[1]), constant, 0) for _ in cs]
    features, labels, weight = _soft(x[known].astype(np.float64), y)
    out = []
    for c in cs:
        model: Any = LogisticRegression(
            C=float(c), solver="liblinear", intercept_scaling=10.0, max_iter=max_iter
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features, labels, sample_weight=weight)
        n_iter = int(np.max(model.n_iter_))
        out.append((np.asarray(model.coef_[0], np.float64), float(model.intercept_[0]), n_iter))
    return out


def _soft(x: Matrix, y: Matrix) -> tuple[Matrix, Matrix, Matrix]:
    """Rows as (features, 0/1 label, weight): a score s in (0, 1) is a positive of
    weight s and a negative of weight 1 - s."""
    hard = (y == 0.0) | (y == 1.0)
    if hard.all():
        return x, y.astype(np.int64), np.ones(len(y))
    soft = ~hard
    features = np.vstack([x, x[soft]])
    labels = np.concatenate([(y >= 0.5).astype(np.int64), np.zeros(int(soft.sum()), np.int64)])
    labels[np.flatnonzero(soft)] = 1
    weight = np.concatenate([np.where(hard, 1.0, y), 1.0 - y[soft]])
    keep = weight > 0
    return features[keep], labels[keep], weight[keep]
