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

from collections.abc import Sequence

import numpy as np

from tierwise.learning.logistic_fit import logistic_path
from tierwise.learning.models import (
    KNNPredictor,
    LogisticPredictor,
    Matrix,
    Vectors,
    _column_means,
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
    weights, bias, iterations = logistic_path(x, y, cs, max_iter)
    n = max(len(x), 1)
    return [
        LogisticPredictor(weights[i], bias[i], 1.0 / (c * n), int(iterations[i]))
        for i, c in enumerate(cs)
    ]
