"""Topic-free escalation signals evaluated leave-one-benchmark-out.

A two-step cascade: the cheap model answers; a signal set decides whether to keep the
answer or escalate to the strong model. Each signal set is a logistic regression on
"cheap answer wrong", fitted on every benchmark but one and applied once to the one
left out. On the held-out benchmark: AUROC, the strong model's cost share at 95% of its
accuracy along the held-out curve, and the operating point of the threshold chosen on
the training benchmarks (the cheapest reaching 95% there), each with a bootstrap
interval over held-out prompts. A signal set marked `router` is used before any call
(the cheap model's cost is paid only when it is chosen).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.checks.normalise import normalise
from tierwise.embeddings.structure import StructureEmbedder
from tierwise.evaluation.answers import AnswerTable
from tierwise.learning.outcomes import OutcomeTable

Matrix = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
TARGET = 0.95


def sample_rows(
    table: OutcomeTable,
    answers: AnswerTable,
    models: Sequence[str],
    sizes: Mapping[str, int],
    seed: int,
) -> Index:
    """Up to `sizes[source]` rows per source where every model in `models` has a score
    and an answer, drawn with `seed`, interleaved across sources."""
    rng = np.random.default_rng(seed)
    cols = np.array([table.models.index(m) for m in models], dtype=np.intp)
    texts = [answers.models.index(m) for m in models]
    known = ~np.isnan(table.scores[:, cols]) & ~np.isnan(table.costs[:, cols])
    scored = np.asarray(known.all(axis=1), dtype=bool)
    lanes: list[list[int]] = []
    for source, size in sizes.items():
        pool = [
            i
            for i in range(len(table))
            if table.sources[i] == source and scored[i] and all(answers.texts[i][j] for j in texts)
        ]
        picked = rng.permutation(len(pool))[:size]
        lanes.append([pool[k] for k in picked])
    longest = max(map(len, lanes), default=0)
    out = [lane[k] for k in range(longest) for lane in lanes if k < len(lane)]
    return np.array(out, dtype=np.intp)


@dataclass(frozen=True, slots=True)
class SignalSet:
    """Signals used together; `router` decides before any call (prompt-only)."""

    name: str
    signals: tuple[str, ...]
    router: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """Per prompt: benchmark, cheap answer wrong, scores and costs of the cheap, second
    and strong model, and the signals' feature columns."""

    sources: list[str]
    wrong: Matrix
    scores: Matrix
    costs: Matrix
    features: dict[str, Matrix]

    @classmethod
    def build(
        cls,
        table: OutcomeTable,
        answers: AnswerTable,
        rows: Index,
        local: Mapping[str, Mapping[str, Any]],
        models: Sequence[str],
    ) -> Problem:
        """`models` = (cheap, second, strong); `local` = the local model's scores by
        prompt id (`tierwise.evaluation.signal_scores`; a missing prompt has none)."""
        cols = np.array([table.models.index(m) for m in models], dtype=np.intp)
        scores = table.scores[np.ix_(rows, cols)]
        ids = [table.prompt_ids[i] for i in rows]
        return cls(
            sources=[table.sources[i] for i in rows],
            wrong=(scores[:, 0] < 0.5).astype(np.float64),
            scores=scores,
            costs=table.costs[np.ix_(rows, cols)],
            features={
                "structure": structure_features([table.texts[i] for i in rows]),
                "agreement": agreement_features(table, answers, rows, models[:2]),
                "judge": _logit_column([local.get(p, {}).get("p_yes") for p in ids]),
                "confidence": _logit_column([local.get(p, {}).get("p_label") for p in ids]),
            },
        )


def structure_features(texts: Sequence[str]) -> Matrix:
    """The `structure` embedder's features before normalisation."""
    embedder = StructureEmbedder()
    return np.array([list(embedder.features(t).values()) for t in texts], dtype=np.float64)


def agreement_features(
    table: OutcomeTable, answers: AnswerTable, rows: Index, models: Sequence[str]
) -> Matrix:
    """Per row: 1.0 when the two models' answers normalise to the same answer, and
    1.0 when the first model's answer normalises at all (parsable code, a named option)."""
    first, second = (answers.models.index(m) for m in models)
    out = np.zeros((len(rows), 2))
    for k, i in enumerate(rows):
        a = normalise(answers.texts[i][first], table.texts[i])
        b = normalise(answers.texts[i][second], table.texts[i])
        out[k] = (float(a is not None and a == b), float(a is not None))
    return out


def _logit_column(values: Sequence[object]) -> Matrix:
    """log(p / (1 - p)) of each value (p clipped to [1e-4, 1 - 1e-4]); NaN for None."""
    p = np.array([np.nan if v is None else float(str(v)) for v in values], dtype=np.float64)
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p)).reshape(-1, 1)


def auroc(wrong: Matrix, score: Matrix) -> float:
    """P(score of a wrong row > score of a right row), ties counting half; NaN when
    one class is absent."""
    pos, neg = score[wrong > 0.5], score[wrong <= 0.5]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(values))
    ranks[order] = _average_ranks(values)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _average_ranks(sorted_values: Matrix) -> Matrix:
    ranks = np.arange(1, len(sorted_values) + 1, dtype=np.float64)
    _, start, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    for s, c in zip(start, counts, strict=True):
        ranks[s : s + c] = s + (c + 1) / 2
    return ranks


def fit_logistic(x: Matrix, y: Matrix, ridge: float = 1.0, iterations: int = 50) -> Matrix:
    """Weights (bias first) of an L2-penalised logistic regression, by Newton steps."""
    design = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], ridge)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(design @ w)))
        gradient = design.T @ (p - y) + penalty * w
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


@dataclass(frozen=True, slots=True)
class Outcome:
    """A signal set on one held-out benchmark: point estimates and 95% intervals."""

    signal_set: SignalSet
    held_out: str
    prompts: int
    auroc: tuple[float, float, float]
    share_at_target: tuple[float, float, float]
    transferred_quality: tuple[float, float, float]
    transferred_share: tuple[float, float, float]


def design(problem: Problem, signals: Sequence[str], train: Index, rows: Index) -> Matrix:
    """Feature columns of `signals` for `rows`: missing values take the training mean,
    then each column is standardised with training statistics."""
    x = np.hstack([problem.features[s] for s in signals])
    mean = np.nanmean(x[train], axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    x = np.where(np.isnan(x), mean, x)
    scale = x[train].std(axis=0)
    return (x[rows] - mean) / np.where(scale > 0, scale, 1.0)


def served(problem: Problem, rows: Index, escalate: npt.NDArray[np.bool_], s: SignalSet) -> Matrix:
    """(quality, cost) per row when `escalate` rows go to the strong model."""
    scores, costs = problem.scores[rows], problem.costs[rows]
    quality = np.where(escalate, scores[:, 2], scores[:, 0])
    if s.router:
        cost = np.where(escalate, costs[:, 2], costs[:, 0])
    else:
        extra = costs[:, 1] if "agreement" in s.signals else 0.0
        cost = costs[:, 0] + extra + escalate * costs[:, 2]
    return np.stack([quality, cost], axis=1)


def curve(problem: Problem, rows: Index, p: Matrix, s: SignalSet) -> tuple[Matrix, Matrix]:
    """Mean quality and cost when the k rows most likely wrong escalate, k = 0..n,
    and the score thresholds between consecutive k."""
    order = np.argsort(-p, kind="mergesort")
    base = served(problem, rows[order], np.zeros(len(rows), dtype=bool), s)
    full = served(problem, rows[order], np.ones(len(rows), dtype=bool), s)
    gain = np.vstack([np.zeros((1, 2)), np.cumsum(full - base, axis=0)])
    means = (base.sum(axis=0) + gain) / len(rows)
    ranked = p[order]
    cuts = np.concatenate([[np.inf], (ranked[:-1] + ranked[1:]) / 2, [-np.inf]])
    return means, cuts


def share_at(problem: Problem, rows: Index, p: Matrix, s: SignalSet) -> float:
    """The strong model's cost share at the cheapest point reaching TARGET of its
    quality on `rows`."""
    means, _ = curve(problem, rows, p, s)
    reference = problem.scores[rows, 2].mean(), problem.costs[rows, 2].mean()
    ok = means[:, 0] >= TARGET * reference[0] - 1e-12
    return float(means[ok, 1].min() / reference[1]) if ok.any() else float("nan")


def threshold(problem: Problem, rows: Index, p: Matrix, s: SignalSet) -> float:
    """The score above which to escalate: cheapest point reaching TARGET on `rows`."""
    means, cuts = curve(problem, rows, p, s)
    reference = problem.scores[rows, 2].mean()
    ok = np.flatnonzero(means[:, 0] >= TARGET * reference - 1e-12)
    return float(cuts[ok[np.argmin(means[ok, 1])]])


def operating(problem: Problem, rows: Index, p: Matrix, s: SignalSet, cut: float) -> Matrix:
    """(quality share, cost share) of the strong model when rows scoring above `cut`
    escalate."""
    mean = served(problem, rows, p > cut, s).mean(axis=0)
    reference = np.array([problem.scores[rows, 2].mean(), problem.costs[rows, 2].mean()])
    return np.asarray(mean / reference, dtype=np.float64)


def held_out_scores(problem: Problem, s: SignalSet, held_out: str) -> tuple[Index, Index, Matrix]:
    """Training rows, held-out rows, and the fitted P(wrong) of every row."""
    sources = np.array(problem.sources)
    train = np.flatnonzero(sources != held_out)
    test = np.flatnonzero(sources == held_out)
    everything = np.arange(len(sources))
    x = design(problem, s.signals, train, everything)
    w = fit_logistic(x[train], problem.wrong[train])
    return train, test, 1 / (1 + np.exp(-(w[0] + x @ w[1:])))


def evaluate(
    problem: Problem, s: SignalSet, held_out: str, resamples: int, rng: np.random.Generator
) -> Outcome:
    """One signal set with `held_out` left out: fitted and thresholded on the rest."""
    train, test, p = held_out_scores(problem, s, held_out)
    cut = threshold(problem, train, p[train], s)
    samples = [test] + [rng.choice(test, len(test)) for _ in range(resamples)]
    values = np.array(
        [
            [
                auroc(problem.wrong[rows], p[rows]),
                share_at(problem, rows, p[rows], s),
                *operating(problem, rows, p[rows], s, cut),
            ]
            for rows in samples
        ]
    )
    return Outcome(s, held_out, len(test), *(_interval(values[:, k]) for k in range(4)))


def _interval(values: Matrix) -> tuple[float, float, float]:
    """The first value and the 2.5/97.5 percentiles of the rest (NaN-free)."""
    rest = values[1:][~np.isnan(values[1:])]
    if not len(rest):
        return float(values[0]), float("nan"), float("nan")
    low, high = np.percentile(rest, [2.5, 97.5])
    return float(values[0]), float(low), float(high)


def evaluate_all(
    problem: Problem, sets: Sequence[SignalSet], resamples: int, seed: int
) -> list[Outcome]:
    """Every signal set with every benchmark held out in turn."""
    rng = np.random.default_rng(seed)
    held = sorted(set(problem.sources))
    return [evaluate(problem, s, b, resamples, rng) for s in sets for b in held]


def random_share(problem: Problem, held_out: str) -> float:
    """Cost share of a random mix of cheap and strong reaching TARGET on `held_out`."""
    rows = np.flatnonzero(np.array(problem.sources) == held_out)
    q = problem.scores[rows][:, [0, 2]].mean(axis=0)
    c = problem.costs[rows][:, [0, 2]].mean(axis=0)
    mix = 0.0 if q[0] >= TARGET * q[1] else (TARGET * q[1] - q[0]) / (q[1] - q[0])
    return float(((1 - mix) * c[0] + mix * c[1]) / c[1])


def _ci(value: tuple[float, float, float], percent: bool = False) -> str:
    if np.isnan(value[0]):
        return "not reached"
    first, low, high = (f"{100 * v:.0f}%" if percent else f"{v:.3f}" for v in value)
    if np.isnan(value[1]):
        return first
    return f"{first} ({low}-{high})"


def markdown(problem: Problem, outcomes: Sequence[Outcome]) -> str:
    """The results as a Markdown table, random rows first."""
    lines = [
        "| signals | held out | prompts | AUROC, cheap answer wrong | GPT-4 cost share "
        "at 95% (held-out curve) | threshold from the other two: quality | cost share |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
    ]
    held = sorted(set(problem.sources))
    for b in held:
        n = problem.sources.count(b)
        share = f"{100 * random_share(problem, b):.0f}%"
        lines.append(f"| random mix | {_short(b)} | {n} | 0.5 | {share} | 95% | {share} |")
    for o in outcomes:
        lines.append(
            f"| {o.signal_set.name} | {_short(o.held_out)} | {o.prompts} | {_ci(o.auroc)} | "
            f"{_ci(o.share_at_target, True)} | {_ci(o.transferred_quality, True)} | "
            f"{_ci(o.transferred_share, True)} |"
        )
    return "\n".join(lines)


def _short(source: str) -> str:
    return source.rsplit("/", 1)[-1]
