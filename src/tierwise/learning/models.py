"""Per-model predictors of P(good answer | prompt embedding), and utility decisions.

Every predictor maps unit-length prompt embeddings (n, d) to a matrix (n, models) of
expected normalised scores in [0, 1]; training targets may be NaN (no result).

Utility of model m for a prompt: p_m - cost_weight * relative_cost_m, where
relative_cost_m is m's mean training cost in USD per request divided by the highest
mean cost among all trained models (the priciest model costs 1.0; unknown costs
count as 0). At cost_weight 0 the most likely model wins; ties go to the cheaper one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.float32]
Arrays = dict[str, npt.NDArray[Any]]
Hyper = dict[str, float | int]


class Predictor(Protocol):
    method: ClassVar[str]

    def predict(self, x: Vectors) -> Matrix: ...

    def hyperparameters(self) -> Hyper: ...

    def arrays(self) -> Arrays: ...


def _column_means(y: Matrix) -> Matrix:
    known = ~np.isnan(y)
    totals = np.where(known, y, 0.0).sum(axis=0)
    counts = known.sum(axis=0)
    means: Matrix = np.where(counts > 0, totals / np.maximum(counts, 1), 0.5)
    return means


@dataclass(frozen=True)
class KNNPredictor:
    """Cosine k-nearest neighbours weighted by similarity ** `power` (negative counts
    0), shrunk toward each model's mean score by `prior_strength` pseudo-neighbours of
    weight 1."""

    embeddings: Vectors
    outcomes: Matrix
    prior: Matrix
    k: int = 50
    prior_strength: float = 1.0
    power: float = 1.0
    method: ClassVar[str] = "knn"

    @classmethod
    def fit(
        cls,
        x: Vectors,
        y: Matrix,
        rng: np.random.Generator,
        *,
        k: int = 50,
        prior_strength: float = 1.0,
        power: float = 1.0,
    ) -> KNNPredictor:
        del rng
        return cls(
            x.astype(np.float32),
            y.astype(np.float64),
            _column_means(y),
            int(k),
            float(prior_strength),
            float(power),
        )

    def predict(self, x: Vectors) -> Matrix:
        out = np.empty((len(x), self.outcomes.shape[1]), dtype=np.float64)
        k = min(self.k, len(self.embeddings))
        if k == 0:
            out[:] = self.prior
            return out
        for start in range(0, len(x), 512):
            sims = x[start : start + 512].astype(np.float32) @ self.embeddings.T
            nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            weights = np.clip(np.take_along_axis(sims, nearest, axis=1), 0.0, None) ** self.power
            labels = self.outcomes[nearest]
            known = (~np.isnan(labels)) * weights.astype(np.float64)[:, :, None]
            total = (known * np.nan_to_num(labels)).sum(axis=1) + self.prior_strength * self.prior
            mass = known.sum(axis=1) + self.prior_strength
            out[start : start + 512] = np.where(
                mass > 0, total / np.maximum(mass, 1e-12), self.prior
            )
        return out

    def hyperparameters(self) -> Hyper:
        return {"k": self.k, "prior_strength": self.prior_strength, "power": self.power}

    def arrays(self) -> Arrays:
        return {"embeddings": self.embeddings, "outcomes": self.outcomes, "prior": self.prior}

    @classmethod
    def restore(cls, hyper: Mapping[str, Any], arrays: Mapping[str, Any]) -> KNNPredictor:
        return cls(
            arrays["embeddings"],
            arrays["outcomes"],
            arrays["prior"],
            int(hyper["k"]),
            float(hyper["prior_strength"]),
            float(hyper.get("power", 1.0)),
        )


def _sigmoid(z: Matrix) -> Matrix:
    result: Matrix = 0.5 * (1.0 + np.tanh(0.5 * z))
    return result


def _logit(p: Matrix) -> Matrix:
    clipped = np.clip(p, 1e-3, 1 - 1e-3)
    result: Matrix = np.log(clipped / (1 - clipped))
    return result


def _residual(y: Matrix, logits: Matrix) -> Matrix:
    """d(mean cross-entropy per model)/d(logits), NaN targets ignored."""
    known = ~np.isnan(y)
    counts = np.maximum(known.sum(axis=0), 1)
    result: Matrix = np.where(known, _sigmoid(logits) - np.nan_to_num(y), 0.0) / counts
    return result


@dataclass(frozen=True)
class LogisticPredictor:
    """One L2-regularised logistic regression per model (soft targets allowed): mean
    cross-entropy plus `l2` / 2 * |w|^2, the intercept lightly penalised. Fitted by
    scikit-learn (`tierwise.learning.logistic_fit`); predicted here in numpy, which is
    about 100 times faster per request than scikit-learn's `predict_proba`."""

    weights: Matrix
    bias: Matrix
    l2: float = 1e-3
    iterations: int = 200
    method: ClassVar[str] = "logistic"

    @classmethod
    def fit(
        cls,
        x: Vectors,
        y: Matrix,
        rng: np.random.Generator,
        *,
        l2: float = 1e-3,
        iterations: int = 200,
    ) -> LogisticPredictor:
        del rng
        from tierwise.learning.logistic_fit import logistic_path

        c = 1.0 / (float(l2) * max(len(x), 1))
        weights, bias, _ = logistic_path(x, y.astype(np.float64), [c], max_iter=int(iterations))
        return cls(weights[0], bias[0], float(l2), int(iterations))

    def predict(self, x: Vectors) -> Matrix:
        return _sigmoid(x.astype(np.float64) @ self.weights + self.bias)

    def hyperparameters(self) -> Hyper:
        return {"l2": self.l2, "iterations": self.iterations}

    def arrays(self) -> Arrays:
        return {"weights": self.weights, "bias": self.bias}

    @classmethod
    def restore(cls, hyper: Mapping[str, Any], arrays: Mapping[str, Any]) -> LogisticPredictor:
        return cls(arrays["weights"], arrays["bias"], float(hyper["l2"]), int(hyper["iterations"]))


@dataclass(frozen=True)
class MFPredictor:
    """Matrix factorisation in the style of RouteLLM: logit_m(x) = v_m . (P^T x) + b_m,
    a shared projection P (d, rank) and one vector v_m per model, trained with Adam.

    Fitted here rather than by scikit-learn, which has no estimator for it: its
    factorisations (NMF, TruncatedSVD) factor one matrix without side features, and its
    MLPClassifier (an identity hidden layer of `rank` units is this model) takes neither
    missing targets nor soft scores, which most outcome tables have."""

    projection: Matrix
    model_vectors: Matrix
    bias: Matrix
    rank: int = 16
    l2: float = 1e-2
    iterations: int = 300
    learning_rate: float = 0.05
    method: ClassVar[str] = "mf"

    @classmethod
    def fit(
        cls,
        x: Vectors,
        y: Matrix,
        rng: np.random.Generator,
        *,
        rank: int = 16,
        l2: float = 1e-2,
        iterations: int = 300,
        learning_rate: float = 0.05,
    ) -> MFPredictor:
        features = x.astype(np.float64)
        params = [
            rng.normal(0.0, 1.0 / np.sqrt(rank), (features.shape[1], rank)),
            rng.normal(0.0, 1.0 / np.sqrt(rank), (y.shape[1], rank)),
            _logit(_column_means(y)),
        ]
        adam = _Adam(params, learning_rate)
        for _ in range(int(iterations)):
            projected = features @ params[0]
            grad = _residual(y, projected @ params[1].T + params[2])
            grad_v = grad.T @ projected + l2 * params[1]
            grad_p = features.T @ (grad @ params[1]) + l2 * params[0]
            adam.step([grad_p, grad_v, grad.sum(axis=0)])
        projection, vectors, bias = params
        return cls(
            projection, vectors, bias, int(rank), float(l2), int(iterations), float(learning_rate)
        )

    def predict(self, x: Vectors) -> Matrix:
        projected = x.astype(np.float64) @ self.projection
        return _sigmoid(projected @ self.model_vectors.T + self.bias)

    def hyperparameters(self) -> Hyper:
        return {
            "rank": self.rank,
            "l2": self.l2,
            "iterations": self.iterations,
            "learning_rate": self.learning_rate,
        }

    def arrays(self) -> Arrays:
        return {
            "projection": self.projection,
            "model_vectors": self.model_vectors,
            "bias": self.bias,
        }

    @classmethod
    def restore(cls, hyper: Mapping[str, Any], arrays: Mapping[str, Any]) -> MFPredictor:
        return cls(
            arrays["projection"],
            arrays["model_vectors"],
            arrays["bias"],
            int(hyper["rank"]),
            float(hyper["l2"]),
            int(hyper["iterations"]),
            float(hyper["learning_rate"]),
        )


@dataclass
class _Adam:
    params: list[Matrix]
    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.999
    steps: int = 0
    first: list[Matrix] = field(default_factory=list)
    second: list[Matrix] = field(default_factory=list)

    def step(self, grads: list[Matrix]) -> None:
        if not self.first:
            self.first = [np.zeros_like(p) for p in self.params]
            self.second = [np.zeros_like(p) for p in self.params]
        self.steps += 1
        scale1, scale2 = 1 - self.beta1**self.steps, 1 - self.beta2**self.steps
        for i, grad in enumerate(grads):
            self.first[i] = self.beta1 * self.first[i] + (1 - self.beta1) * grad
            self.second[i] = self.beta2 * self.second[i] + (1 - self.beta2) * grad * grad
            update = (self.first[i] / scale1) / (np.sqrt(self.second[i] / scale2) + 1e-8)
            self.params[i] -= self.learning_rate * update


METHODS: dict[str, Any] = {
    "knn": KNNPredictor,
    "logistic": LogisticPredictor,
    "mf": MFPredictor,
}


def fit_predictor(
    method: str, x: Vectors, y: Matrix, rng: np.random.Generator, hyper: Mapping[str, Any]
) -> Predictor:
    """Fit `method` ("knn", "logistic", "mf") on embeddings `x` and targets `y`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    predictor: Predictor = METHODS[method].fit(x, y, rng, **dict(hyper))
    return predictor


def restore_predictor(
    method: str, hyper: Mapping[str, Any], arrays: Mapping[str, Any]
) -> Predictor:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHODS)}")
    predictor: Predictor = METHODS[method].restore(hyper, arrays)
    return predictor


def relative_costs(mean_costs: Matrix) -> Matrix:
    """Mean cost divided by the highest known mean cost; unknown costs count as 0."""
    known = np.nan_to_num(mean_costs, nan=0.0)
    top = float(known.max()) if known.size else 0.0
    result: Matrix = known / top if top > 0 else np.zeros_like(known)
    return result


def utilities(p: Matrix, relative: Matrix, cost_weight: float) -> Matrix:
    result: Matrix = p - cost_weight * relative
    return result


def choose(
    p: Matrix, relative: Matrix, cost_weight: float, allowed: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.intp]:
    """Index of the best-utility model per row (ties: the cheaper); only `allowed` models."""
    order = np.argsort(relative, kind="stable")
    scored = utilities(p, relative, cost_weight)[:, order]
    if allowed is not None:
        scored = np.where(allowed[order], scored, -np.inf)
    picked: npt.NDArray[np.intp] = order[np.argmax(scored, axis=1)]
    return picked


def strong_win_rate(p: Matrix, weak: int, strong: int) -> Matrix:
    """0.5 + (p_strong - p_weak) / 2: P(strong beats weak) + P(tie) / 2 for independent
    0/1 outcomes. Sending a prompt to strong when it exceeds a threshold sweeps the
    cost-quality curve between the two."""
    result: Matrix = 0.5 + 0.5 * (p[:, strong] - p[:, weak])
    return result


@dataclass(frozen=True)
class TrainedRouter:
    """A fitted predictor plus what is needed to decide and to check compatibility.
    `cost_weight` is the default for deciding, or `threshold` (a strong win rate, two
    tiers) when set; `created` is an ISO-8601 timestamp."""

    predictor: Predictor
    models: list[str]
    mean_scores: Matrix
    mean_costs: Matrix
    embedder_name: str
    embedder_dimension: int
    data_hash: str = ""
    n_prompts: int = 0
    created: str = ""
    cost_weight: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None

    @property
    def method(self) -> str:
        return self.predictor.method

    @property
    def relative_costs(self) -> Matrix:
        return relative_costs(self.mean_costs)

    def predict(self, x: Vectors) -> Matrix:
        return self.predictor.predict(x)

    def choose(
        self, x: Vectors, cost_weight: float, allowed: npt.NDArray[np.bool_] | None = None
    ) -> npt.NDArray[np.intp]:
        return choose(self.predict(x), self.relative_costs, cost_weight, allowed)
