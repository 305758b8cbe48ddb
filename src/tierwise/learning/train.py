"""Train learned routers on outcome tables, and measure them on held-out prompts.

Folds are grouped by prompt text, so a text never appears on both sides of a split
(some tables repeat a prompt under several ids). Held-out metrics use the test rows
where every model has a score; training uses every known cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.base import Embedder
from tierwise.embeddings.cache import EmbeddingCache
from tierwise.learning.models import (
    METHODS,
    Matrix,
    TrainedRouter,
    Vectors,
    choose,
    fit_predictor,
    relative_costs,
)
from tierwise.learning.outcomes import OutcomeTable

Index = npt.NDArray[np.intp]
Clock = Callable[[], datetime]
DEFAULT_COST_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Held-out outcome of a routing policy: mean normalised score obtained, mean
    cost in USD per request (over rows with a known cost), and each model's share."""

    name: str
    quality: float
    cost_usd: float
    shares: dict[str, float]


@dataclass(frozen=True, slots=True)
class FoldPrediction:
    fold: int
    train_index: Index
    test_index: Index
    probabilities: Matrix
    mean_costs: Matrix


@dataclass(frozen=True, slots=True)
class FoldResult:
    fold: int
    train_ids: frozenset[str]
    test_ids: frozenset[str]
    router: list[Metrics]
    baselines: list[Metrics]


def embed_table(table: OutcomeTable, embedder: Embedder, batch: int = 64) -> Vectors:
    """Embeddings of the table's texts, shape (rows, embedder.dimension); batches hold
    texts of similar length (less padding for neural embedders)."""
    return embed_texts(table.texts, embedder, batch)


def embed_texts(texts: Sequence[str], embedder: Embedder, batch: int = 64) -> Vectors:
    """Embeddings of `texts`, in batches of texts of similar length."""
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        out[rows] = embedder.embed([texts[i] for i in rows])
    return out


def table_vectors(
    table: OutcomeTable, embedder: Embedder, cache: EmbeddingCache | None = None
) -> Vectors:
    """The table's embeddings through the embedding cache (default: `EmbeddingCache()`,
    under `$TIERWISE_HOME/embeddings`): one file per embedder and distinct texts of the
    table, so train, eval, calibrate and fit-examples on one table embed it once."""
    store = cache if cache is not None else EmbeddingCache()
    unique = list(dict.fromkeys(table.texts))
    vectors = store.load(embedder.name, unique, embedder.dimension)
    if vectors is None:
        vectors = embed_texts(unique, embedder)
        store.store(embedder.name, unique, vectors)
    where = {text: i for i, text in enumerate(unique)}
    rows: Vectors = vectors[[where[t] for t in table.texts]]
    return rows


def fold_indices(table: OutcomeTable, folds: int, seed: int = 0) -> list[tuple[Index, Index]]:
    """(train rows, test rows) per fold; rows with the same text share a fold."""
    texts = sorted(set(table.texts))
    if folds < 2 or folds > len(texts):
        raise ValueError(f"folds must be between 2 and {len(texts)} distinct prompts")
    order = np.random.default_rng(seed).permutation(len(texts))
    fold_of_text = {texts[t]: i % folds for i, t in enumerate(order)}
    fold_of_row = np.array([fold_of_text[t] for t in table.texts], dtype=np.intp)
    splits = []
    for fold in range(folds):
        test = np.flatnonzero(fold_of_row == fold)
        train = np.flatnonzero(fold_of_row != fold)
        _check_disjoint(table, train, test)
        splits.append((train, test))
    return splits


def _check_disjoint(table: OutcomeTable, train: Index, test: Index) -> None:
    seen_ids = {table.prompt_ids[i] for i in train}
    seen_texts = {table.texts[i] for i in train}
    for i in test:
        if table.prompt_ids[i] in seen_ids or table.texts[i] in seen_texts:
            raise AssertionError(f"prompt {table.prompt_ids[i]!r} is in train and test")


def train(
    table: OutcomeTable,
    method: str = "knn",
    embedder: Embedder | None = None,
    *,
    folds: int | None = None,
    seed: int = 0,
    cost_weight: float = 0.0,
    hyperparameters: Mapping[str, Any] | None = None,
    embeddings: Vectors | None = None,
    clock: Clock | None = None,
) -> TrainedRouter:
    """Fit a router on every row of `table`. With `folds`, first measure it by
    K-fold cross-validation and keep the mean held-out metrics in `extra`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    chosen = embedder if embedder is not None else _default_embedder()
    x = embed_table(table, chosen) if embeddings is None else embeddings
    hyper = dict(hyperparameters or {})
    extra: dict[str, Any] = {}
    if folds:
        results = cross_validate(
            table, method, chosen, folds=folds, seed=seed, hyperparameters=hyper, embeddings=x
        )
        extra["cross_validation"] = _cv_summary(results, folds, seed)
    predictor = fit_predictor(method, x, table.scores, np.random.default_rng(seed), hyper)
    now = (clock or _utc_now)()
    return TrainedRouter(
        predictor,
        list(table.models),
        table.mean_scores(),
        table.mean_costs(),
        chosen.name,
        chosen.dimension,
        table.content_hash,
        len(table),
        now.isoformat(),
        float(cost_weight),
        extra,
    )


def _cv_summary(results: list[FoldResult], folds: int, seed: int) -> dict[str, Any]:
    summary = summarize([r.router for r in results])
    return {"folds": folds, "seed": seed, "router": [_jsonable(m) for m in summary]}


def _default_embedder() -> Embedder:
    from tierwise.embeddings.hashing import HashingEmbedder

    return HashingEmbedder()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def held_out_predictions(
    table: OutcomeTable,
    method: str,
    embeddings: Vectors,
    *,
    folds: int = 5,
    seed: int = 0,
    hyperparameters: Mapping[str, Any] | None = None,
) -> list[FoldPrediction]:
    """Per fold: a predictor fitted on the training rows only, applied to the test rows."""
    out = []
    for fold, (train_rows, test_rows) in enumerate(fold_indices(table, folds, seed)):
        rng = np.random.default_rng([seed, fold])
        fitted = fit_predictor(
            method, embeddings[train_rows], table.scores[train_rows], rng, hyperparameters or {}
        )
        probabilities = fitted.predict(embeddings[test_rows])
        mean_costs = table.subset(train_rows).mean_costs()
        out.append(FoldPrediction(fold, train_rows, test_rows, probabilities, mean_costs))
    return out


def cross_validate(
    table: OutcomeTable,
    method: str,
    embedder: Embedder,
    *,
    folds: int = 5,
    seed: int = 0,
    cost_weights: Sequence[float] = DEFAULT_COST_WEIGHTS,
    hyperparameters: Mapping[str, Any] | None = None,
    embeddings: Vectors | None = None,
) -> list[FoldResult]:
    """Held-out metrics per fold at each cost weight, with baselines on the same rows."""
    x = embed_table(table, embedder) if embeddings is None else embeddings
    results = []
    for pred in held_out_predictions(
        table, method, x, folds=folds, seed=seed, hyperparameters=hyperparameters
    ):
        test = table.subset(pred.test_index)
        complete: npt.NDArray[np.bool_] = np.asarray(~np.isnan(test.scores).any(axis=1))
        relative = relative_costs(pred.mean_costs)
        router = [
            evaluate(test, choose(pred.probabilities, relative, w), complete, f"w={w:g}")
            for w in cost_weights
        ]
        train_table = table.subset(pred.train_index)
        results.append(
            FoldResult(
                pred.fold,
                frozenset(train_table.prompt_ids),
                frozenset(test.prompt_ids),
                router,
                baselines(train_table, test, complete),
            )
        )
    return results


def evaluate(
    table: OutcomeTable, chosen: Index, rows: npt.NDArray[np.bool_] | None, name: str
) -> Metrics:
    """Metrics of picking model `chosen[i]` for row i, over `rows` (default: all)."""
    mask = np.ones(len(table), dtype=bool) if rows is None else rows
    picked = chosen[mask]
    place = np.arange(len(picked))
    scores = table.scores[mask][place, picked]
    costs = table.costs[mask][place, picked]
    counts = np.bincount(picked, minlength=len(table.models))
    total = max(len(picked), 1)
    return Metrics(
        name,
        _mean(scores),
        _mean(costs),
        {m: float(c) / total for m, c in zip(table.models, counts, strict=True)},
    )


def _mean(values: Matrix) -> float:
    known = values[~np.isnan(values)]
    return float(known.mean()) if known.size else math.nan


def baselines(
    train: OutcomeTable, test: OutcomeTable, rows: npt.NDArray[np.bool_]
) -> list[Metrics]:
    """Each single model, the best single model on `train`, a uniform random mix
    (its expectation), and the per-prompt oracle (best score, then cheapest)."""
    n, m = test.scores.shape
    out = [
        evaluate(test, np.full(n, j, dtype=np.intp), rows, f"always {test.models[j]}")
        for j in range(m)
    ]
    best = int(np.nanargmax(np.nan_to_num(train.mean_scores(), nan=-1.0)))
    out.append(_renamed(out[best], f"best single ({test.models[best]})"))
    out.append(
        Metrics(
            "random",
            _mean(np.array([o.quality for o in out[:m]])),
            _mean(np.array([o.cost_usd for o in out[:m]])),
            {model: 1.0 / m for model in test.models},
        )
    )
    out.append(evaluate(test, _oracle(test, train.mean_costs()), rows, "oracle"))
    return out


def _renamed(metrics: Metrics, name: str) -> Metrics:
    return Metrics(name, metrics.quality, metrics.cost_usd, metrics.shares)


def _oracle(table: OutcomeTable, fallback_costs: Matrix) -> Index:
    costs = np.where(np.isnan(table.costs), np.nan_to_num(fallback_costs, nan=0.0), table.costs)
    best = np.nanmax(np.where(np.isnan(table.scores), -1.0, table.scores), axis=1, keepdims=True)
    penalised = np.where(np.nan_to_num(table.scores, nan=-1.0) >= best, costs, np.inf)
    picked: Index = np.argmin(penalised, axis=1)
    return picked


def summarize(per_fold: Sequence[Sequence[Metrics]]) -> list[Metrics]:
    """Mean over folds of metrics listed in the same order in every fold."""
    if not per_fold:
        return []
    out = []
    for position, first in enumerate(per_fold[0]):
        group = [fold[position] for fold in per_fold]
        shares = {k: float(np.mean([g.shares.get(k, 0.0) for g in group])) for k in first.shares}
        out.append(
            Metrics(
                first.name,
                _mean(np.array([g.quality for g in group])),
                _mean(np.array([g.cost_usd for g in group])),
                shares,
            )
        )
    return out


def _jsonable(metrics: Metrics) -> dict[str, Any]:
    def clean(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {
        "name": metrics.name,
        "quality": clean(metrics.quality),
        "cost_usd": clean(metrics.cost_usd),
        "shares": metrics.shares,
    }
