"""Learning from the gateway's own traffic: train a router on a route's logged
outcomes, compare it with the route's router on held-out logged requests with the
replay estimator, and propose (or apply) the winner through the audit log.

The route's router is measured by its logged decisions (the tier each held-out
request started on), the candidate by its decisions on the same requests; each is
scored by the replay estimator (`evaluation.replay.replay_point`: mean score of
the requests where the decision matches a model whose outcome is known, cost at each
model's mean billed cost), with 95% percentile-bootstrap intervals over the held-out
requests. The candidate wins when it is not worse in quality by more than
`max_drop` at the interval's lower end, is better in quality or cheaper with
confidence (the difference's interval excludes zero), and its decisions meet a known
outcome on at least `min_support` of the held-out requests.
"""

from __future__ import annotations

import base64
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.evaluation.replay import replay_point
from tierwise.learning.from_log import LogOutcomes, write_csv
from tierwise.learning.outcomes import OutcomeTable
from tierwise.learning.store import save_router

if TYPE_CHECKING:
    from tierwise.learning.command import Plan

Index = np.ndarray[Any, np.dtype[np.intp]]
Weights = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class Settings:
    """How a route learns: `tiers` of the route (cheapest first), the least number of
    labelled requests, the quality target of `train`, the held-out share, the
    tolerated quality drop and the bootstrap resamples."""

    tiers: tuple[str, ...]
    min_labelled: int = 200
    quality_target: float = 0.95
    embedder: str = "hashing"
    held_out: float = 0.3
    max_drop: float = 0.02
    samples: int = 400
    seed: int = 0
    min_support: float = 0.25
    """The least share of held-out requests on which the candidate's decision has a
    known outcome: off-policy, a candidate is only judged where the log saw what it
    would do, and one judged on a few requests it happens to agree with is not known
    to be better. (With uniform exploration at share s over k tiers, a candidate
    that disagrees with the route's router on every request is matched on about s/k
    of them; one that disagrees on half, with two tiers, on about half.)"""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trained router file's bytes, the tier of each of its models, and the
    comparison with the route's router on held-out requests."""

    body: bytes
    models: dict[str, str]
    comparison: dict[str, Any]

    @property
    def wins(self) -> bool:
        return bool(self.comparison["candidate_wins"])

    def encoded(self) -> str:
        return base64.b64encode(self.body).decode("ascii")


def labelled_count(outcomes: LogOutcomes) -> int:
    return len(outcomes.rows)


def shortage(outcomes: LogOutcomes, settings: Settings) -> str | None:
    """Why there is too little data to learn from (None: enough)."""
    have, need = labelled_count(outcomes), settings.min_labelled
    models = outcomes.models
    if have < need:
        return f"{have} labelled requests; learning needs at least {need}"
    if len(models) < 2:
        return f"the labelled requests were answered by {models}; learning needs two models"
    return None


def split_rows(texts: Sequence[str], share: float, seed: int) -> tuple[Index, Index]:
    """(train rows, held-out rows), grouped by prompt text."""
    distinct = sorted(set(texts))
    order = np.random.default_rng(seed).permutation(len(distinct))
    cut = max(1, round(len(distinct) * share))
    held = {distinct[i] for i in order[:cut]}
    rows = np.arange(len(texts), dtype=np.intp)
    mask = np.array([t in held for t in texts], dtype=bool)
    return rows[~mask], rows[mask]


def merged(table: OutcomeTable) -> OutcomeTable:
    """One row per distinct prompt text: each model's mean known score and cost over
    the requests that sent it (a prompt asked again may have reached other models)."""
    texts = list(dict.fromkeys(table.texts))
    where = {t: i for i, t in enumerate(texts)}
    group = np.array([where[t] for t in table.texts], dtype=np.intp)
    first = [table.texts.index(t) for t in texts]

    def means(values: np.ndarray[Any, np.dtype[np.float64]]) -> Any:
        known = ~np.isnan(values)
        total = np.zeros((len(texts), values.shape[1]))
        count = np.zeros((len(texts), values.shape[1]))
        np.add.at(total, group, np.where(known, values, 0.0))
        np.add.at(count, group, known)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    return OutcomeTable(
        [table.prompt_ids[i] for i in first],
        texts,
        [table.sources[i] for i in first],
        list(table.models),
        means(table.scores),
        means(table.costs),
        table.content_hash,
    )


def plan_for(settings: Settings, prompts: int) -> Plan:
    """How a candidate is trained: kNN on `settings.embedder`, its k and cost weight
    chosen by `train`'s cross-validation (up to 3 folds) on `prompts` distinct prompts,
    judging each point on every labelled row (a log labels only the models it called)."""
    from tierwise.learning.command import Plan

    return Plan(
        ("knn",),
        (settings.embedder,),
        settings.quality_target,
        0,
        min(3, prompts),
        None,
        None,
        None,
        settings.seed,
        partial=True,
    )


def train_candidate(outcomes: LogOutcomes, settings: Settings) -> Candidate:
    """Train on the training part with `train`'s tuning, compare on the held-out part."""
    from tierwise.learning.command import run
    from tierwise.learning.prepare import load_table

    with tempfile.TemporaryDirectory(prefix="tierwise-learn-") as work:
        path = Path(work) / "outcomes.csv"
        write_csv(outcomes, path)
        table = load_table(path, score_scale="0-1")
        train_rows, held_rows = split_rows(table.texts, settings.held_out, settings.seed)
        training = merged(table.subset(train_rows))
        router, _, _ = run(training, plan_for(settings, len(training)))
        router_file = Path(work) / "router.npz"
        save_router(router, router_file)
        tiers = {m: outcomes.tiers[m] for m in table.models if m in outcomes.tiers}
        chosen = _candidate_choices(router_file, tiers, table.subset(held_rows), settings)
        logged = _logged_choices(outcomes, table, held_rows)
        weights = _weights(outcomes, table, held_rows)
        comparison = compare(table, train_rows, held_rows, chosen, logged, settings, weights)
        comparison["trained_on"] = len(train_rows)
        return Candidate(router_file.read_bytes(), tiers, comparison)


def _candidate_choices(
    path: Path, tiers: dict[str, str], held: OutcomeTable, settings: Settings
) -> Index:
    from tierwise.learning.train import embed_texts
    from tierwise.routing.learned import LearnedRouter

    learned = LearnedRouter(path, tiers)
    trained = learned.load()
    from tierwise.learning.store import make_embedder

    x = embed_texts(held.texts, make_embedder(trained.embedder_name))
    picked = learned.decide_embedded(x, list(settings.tiers))
    by_tier = {tier: model for model, tier in reversed(list(tiers.items()))}
    return np.array([held.models.index(by_tier[t]) for t in picked], dtype=np.intp)


def _logged_choices(outcomes: LogOutcomes, table: OutcomeTable, rows: Index) -> Index:
    chosen = {r.prompt_id: r.chosen for r in outcomes.rows}
    picks = [chosen.get(table.prompt_ids[i]) for i in rows]
    return np.array(
        [table.models.index(p) if p in table.models else -1 for p in picks], dtype=np.intp
    )


def _weights(outcomes: LogOutcomes, table: OutcomeTable, rows: Index) -> Weights | None:
    """1 / each held-out request's logged propensity (1 where none); None when the log
    keeps none."""
    logged = {r.prompt_id: r.propensity for r in outcomes.rows}
    found = [logged.get(table.prompt_ids[i]) for i in rows]
    if all(p is None for p in found):
        return None
    return np.array([1.0 / p if p else (1.0 if p is None else 0.0) for p in found])


def compare(
    table: OutcomeTable,
    train_rows: Index,
    held_rows: Index,
    candidate: Index,
    current: Index,
    settings: Settings,
    weights: Weights | None = None,
) -> dict[str, Any]:
    """Replay estimates of both routers on the held-out rows (inverse-propensity
    weighted when `weights` are given), with intervals."""
    means = table.subset(train_rows).mean_costs()
    means = np.where(np.isnan(means), table.mean_costs(), means)
    held = table.subset(held_rows)
    known = current >= 0
    held, candidate, current = held.subset(np.flatnonzero(known)), candidate[known], current[known]
    w = None if weights is None else weights[known]
    costs = np.tile(means, (len(held), 1))
    replayed = OutcomeTable(
        held.prompt_ids, held.texts, held.sources, held.models, held.scores, costs, ""
    )
    strong = int(np.nanargmax(np.nan_to_num(table.mean_scores(), nan=-1.0)))
    estimate = _estimates(replayed, candidate, current, strong, w)
    intervals = _bootstrap(replayed, candidate, current, strong, settings, w)
    support = estimate["candidate"]["matched"] / len(held) if len(held) else 0.0
    wins = _wins(intervals, support, settings)
    return {
        "held_out": len(held),
        "estimator": "replay on held-out logged requests, 95% percentile bootstrap"
        + ("" if w is None else ", inverse propensity weighted"),
        **estimate,
        "intervals": intervals,
        "max_drop": settings.max_drop,
        "support": support,
        "min_support": settings.min_support,
        "candidate_wins": bool(wins),
    }


def _wins(intervals: dict[str, list[float]], support: float, settings: Settings) -> bool:
    """Not worse in quality by more than `max_drop` at the interval's lower end, judged
    on enough of the held-out requests, and better or cheaper with confidence: the
    quality difference's interval above zero, or the cost difference's below it (a
    point estimate that happens to favour the candidate is not enough)."""
    q_low = intervals["quality_diff"][0]
    c_high = intervals["cost_diff"][1]
    if math.isnan(q_low) or q_low < -settings.max_drop or support < settings.min_support:
        return False
    return q_low > 0 or (not math.isnan(c_high) and c_high < 0)


def _estimates(
    table: OutcomeTable, candidate: Index, current: Index, strong: int, w: Weights | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, choice in (("candidate", candidate), ("current", current)):
        point = replay_point(name, 0.0, choice, table, strong, weights=w)
        matched = int((~np.isnan(table.scores[np.arange(len(choice)), choice])).sum())
        out[name] = {
            "quality": point.quality,
            "cost_usd": point.cost,
            "matched": matched,
            "shares": point.shares,
        }
    return out


def _bootstrap(
    table: OutcomeTable,
    candidate: Index,
    current: Index,
    strong: int,
    settings: Settings,
    w: Weights | None,
) -> dict[str, list[float]]:
    rng = np.random.default_rng(settings.seed)
    draws: dict[str, list[float]] = {k: [] for k in ("candidate", "current", "quality_diff")}
    draws["cost_diff"] = []
    n = len(table)
    for _ in range(settings.samples if n else 0):
        rows = rng.integers(0, n, n)
        sub = table.subset(rows)
        sw = None if w is None else w[rows]
        a = replay_point("a", 0.0, candidate[rows], sub, strong, weights=sw)
        b = replay_point("b", 0.0, current[rows], sub, strong, weights=sw)
        draws["candidate"].append(a.quality)
        draws["current"].append(b.quality)
        draws["quality_diff"].append(a.quality - b.quality)
        draws["cost_diff"].append(a.cost - b.cost)
    return {k: _interval(v) for k, v in draws.items()}


def _interval(values: list[float]) -> list[float]:
    known = np.array([v for v in values if not math.isnan(v)])
    if not known.size:
        return [math.nan, math.nan]
    return [float(np.quantile(known, 0.025)), float(np.quantile(known, 0.975))]


def summary(candidate: Candidate, labelled: int) -> str:
    """The candidate's comparison as JSON text, for the learned-router row."""
    return json.dumps({"labelled": labelled, **candidate.comparison}, default=str)
