"""Per-request prediction time of the learned router's predictors: tierwise's numpy
request path against scikit-learn's own predict, in the same run on the same fitted
parameters.

Each outcome-table prompt is embedded with the static embedder; the first 80% train,
the rest are the requests, predicted one at a time (a (1, d) batch, as the gateway
decides one request) and interleaved between the two implementations; each request's
time is its best of `--repeat` passes (filters preemption on a shared machine):

  logistic numpy    LogisticPredictor.predict: one (1, d) @ (d, models) product + sigmoid
  logistic sklearn  one fitted LogisticRegression per model, predict_proba each
  knn numpy         KNNPredictor.predict: similarities, argpartition, weighted mean
  knn sklearn       NearestNeighbors(brute).kneighbors, then the same weighted mean

Both sides of a pair must agree (largest absolute difference printed). Data:
../shared/data/routerbench_train.csv when present, else tests/fixtures/outcomes_small.csv.

    .venv/bin/python bench/learned_predict.py [--data CSV] [--repeat N] [--core N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from tierwise.learning.models import KNNPredictor, LogisticPredictor, Matrix, Vectors
from tierwise.learning.prepare import load_table
from tierwise.learning.store import make_embedder
from tierwise.learning.train import embed_table

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "routerbench_train.csv"
FIXTURE = HERE.parent / "tests" / "fixtures" / "outcomes_small.csv"
K = 50


def sklearn_logistic(x: Vectors, y: Matrix) -> list[Any]:
    """One LogisticRegression per model on its known outcomes (score >= 0.5 positive)."""
    fitted = []
    for j in range(y.shape[1]):
        known = ~np.isnan(y[:, j])
        labels = (y[known, j] >= 0.5).astype(np.int64)
        model: Any = LogisticRegression(C=1.0, max_iter=1000)
        fitted.append(model.fit(x[known].astype(np.float64), labels))
    return fitted


def sklearn_logistic_predict(models: list[Any], x: Vectors) -> Matrix:
    return np.stack([m.predict_proba(x.astype(np.float64))[:, 1] for m in models], axis=1)


def as_numpy_logistic(models: list[Any]) -> LogisticPredictor:
    weights = np.stack([np.asarray(m.coef_[0], np.float64) for m in models], axis=1)
    bias = np.array([float(m.intercept_[0]) for m in models])
    return LogisticPredictor(weights, bias)


def sklearn_knn_predict(search: Any, knn: KNNPredictor, x: Vectors) -> Matrix:
    """The KNNPredictor's weighted mean over scikit-learn's neighbours."""
    _, nearest = search.kneighbors(x)
    sims = np.take_along_axis(x @ knn.embeddings.T, nearest, axis=1)
    weights = np.clip(sims, 0.0, None).astype(np.float64)[:, :, None]
    labels = knn.outcomes[nearest]
    known = ~np.isnan(labels) * weights
    total = (known * np.nan_to_num(labels)).sum(axis=1) + knn.prior_strength * knn.prior
    mass = known.sum(axis=1) + knn.prior_strength
    result: Matrix = np.where(mass > 0, total / np.maximum(mass, 1e-12), knn.prior)
    return result


def timed(predict: Callable[[Vectors], Matrix], row: Vectors) -> float:
    start = time.perf_counter_ns()
    predict(row)
    return (time.perf_counter_ns() - start) / 1000.0


def run(x_train: Vectors, y_train: Matrix, requests: Vectors, repeat: int) -> None:
    models = sklearn_logistic(x_train, y_train)
    logistic = as_numpy_logistic(models)
    knn = KNNPredictor.fit(x_train, y_train, np.random.default_rng(0), k=K)
    search = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(x_train)
    pairs: dict[str, tuple[Callable[[Vectors], Matrix], Callable[[Vectors], Matrix]]] = {
        "logistic": (logistic.predict, lambda v: sklearn_logistic_predict(models, v)),
        "knn": (knn.predict, lambda v: sklearn_knn_predict(search, knn, v)),
    }
    print(
        "| predictor | numpy p50 us | sklearn p50 us | numpy p99 us | sklearn p99 us "
        "| sklearn / numpy (p50) | max abs diff |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (ours, theirs) in pairs.items():
        for row in requests[:20]:  # warm-up
            ours(row[None, :]), theirs(row[None, :])
        mine = [float("inf")] * len(requests)
        other = [float("inf")] * len(requests)
        for _ in range(repeat):
            for i, row in enumerate(requests):
                one = row[None, :]
                mine[i] = min(mine[i], timed(ours, one))
                other[i] = min(other[i], timed(theirs, one))
        diff = float(np.abs(ours(requests) - theirs(requests)).max())
        p50a, p50b = statistics.median(mine), statistics.median(other)
        p99a, p99b = np.percentile(mine, 99), np.percentile(other, 99)
        print(
            f"| {name} | {p50a:.1f} | {p50b:.1f} | {p99a:.1f} | {p99b:.1f} "
            f"| {p50b / p50a:.1f}x | {diff:.1e} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.exists() else FIXTURE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--core", type=int, default=None, help="pin to this CPU core")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    table = load_table(args.data)
    x = embed_table(table, make_embedder("static"))
    cut = int(0.8 * len(x))
    print(
        f"data {args.data.name}: {cut} training prompts, {len(x) - cut} requests x "
        f"{args.repeat}, {table.scores.shape[1]} models, dimension {x.shape[1]}, k={K}; "
        f"numpy {np.__version__}, scikit-learn {metadata.version('scikit-learn')}, "
        f"Python {platform.python_version()}, core {args.core}"
    )
    run(x[:cut], table.scores[:cut], x[cut:], args.repeat)


if __name__ == "__main__":
    main()
