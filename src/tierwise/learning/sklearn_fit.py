"""Fitting learned routers with scikit-learn: `tierwise train`'s hyperparameter search
(`tierwise.learning.tuning`) and `LogisticPredictor.fit` (`tierwise eval`'s
`learned:logistic`).

kNN: one neighbour search (scikit-learn's brute-force `NearestNeighbors` on the unit
embeddings) gives the predictions of every k at once, computed as `KNNPredictor` does
(similarity-weighted mean of the neighbours' known outcomes, shrunk toward each model's
mean). Logistic: one `LogisticRegression` (liblinear, L2; the intercept as a feature of value
10, so lightly penalised) per model on its known outcomes; a score between 0 and 1 counts
as a positive of that weight and a negative of the rest.
The fitted models are the request-path predictors of `tierwise.learning.models` (numpy
only), so a saved router predicts without scikit-learn, and faster per request than
scikit-learn's own predict (`bench/learned_predict.py`, BENCHMARKS.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tierwise.learning.models import (
    KNNPredictor,
    LogisticPredictor,
    Matrix,
    Vectors,
    _column_means,
    _logit,
)


def knn_grid(
    x_train: Vectors, y_train: Matrix, x_test: Vectors, ks: Sequence[int], prior_strength: float
) -> list[Matrix]:
    """`KNNPredictor` predictions for `x_test` at each k of `ks` (power 1)."""
    from sklearn.neighbors import NearestNeighbors

    top = min(max(ks), len(x_train))
    prior = _column_means(y_train)
    if top == 0:
        return [np.tile(prior, (len(x_test), 1)) for _ in ks]
    search = NearestNeighbors(n_neighbors=top, algorithm="brute", metric="euclidean")
    _, nearest = search.fit(x_train).kneighbors(x_test)
    sims = np.take_along_axis(x_test.astype(np.float32) @ x_train.T, nearest, axis=1)
    labels = y_train[nearest]
    known = ~np.isnan(labels) * np.clip(sims, 0.0, None)[:, :, None]
    mass = np.cumsum(known, axis=1)
    total = np.cumsum(known * np.nan_to_num(labels), axis=1)
    out = []
    for k in ks:
        at = min(k, top) - 1
        m = mass[:, at] + prior_strength
        t = total[:, at] + prior_strength * prior
        out.append(np.where(m > 0, t / np.maximum(m, 1e-12), prior))
    return out


def fit_knn(x: Vectors, y: Matrix, k: int, prior_strength: float) -> KNNPredictor:
    return KNNPredictor.fit(x, y, np.random.default_rng(0), k=k, prior_strength=prior_strength)


def logistic_grid(
    x_train: Vectors, y_train: Matrix, x_test: Vectors, cs: Sequence[float]
) -> list[Matrix]:
    """Predictions for `x_test` of the logistic routers fitted at each C of `cs`."""
    fits = fit_logistic_path(x_train, y_train, cs)
    return [fit.predict(x_test) for fit in fits]


def fit_logistic(x: Vectors, y: Matrix, c: float) -> LogisticPredictor:
    return fit_logistic_path(x, y, [c])[0]


def fit_logistic_path(
    x: Vectors, y: Matrix, cs: Sequence[float], max_iter: int = 1000
) -> list[LogisticPredictor]:
    """One `LogisticPredictor` per C (its `l2` is 1 / (C * rows))."""
    weights = np.zeros((len(cs), x.shape[1], y.shape[1]))
    bias = np.zeros((len(cs), y.shape[1]))
    iterations = np.zeros(len(cs), dtype=np.int64)
    for j in range(y.shape[1]):
        for i, (w, b, n) in enumerate(_column_path(x, y[:, j], cs, max_iter)):
            weights[i, :, j], bias[i, j] = w, b
            iterations[i] = max(iterations[i], n)
    n = max(len(x), 1)
    return [
        LogisticPredictor(weights[i], bias[i], 1.0 / (c * n), int(iterations[i]))
        for i, c in enumerate(cs)
    ]


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
        constant = float(_logit(np.array([mean]))[0])
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
