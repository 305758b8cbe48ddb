"""Evaluate a router spec on an outcome table, on prompts it was not trained on.

Specs: `learned:<method>:<embedder>` (K-fold cross-validation grouped by prompt text,
or trained on a separate table), `heuristic` (the seed's rules: the cheap or the strong
model) and `embedding-centroid:<embedder>` (the seed's example prompts). A saved router
(a router file, a router or route config, or `tierwise fit-examples` output) is
evaluated as it is, at its own operating point (`tierwise.evaluation.saved`). Metrics use the
rows where every model has a score. A cost cell that is empty takes its model's mean
cost; when a model has no cost at all, cost is counted in strong-model calls instead.
Held out by benchmark group instead of folds: see `tierwise.evaluation.splits`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.base import Embedder
from tierwise.evaluation import metrics as m
from tierwise.evaluation import splits
from tierwise.evaluation.metrics import Index, Matrix, Point
from tierwise.evaluation.splits import SplitPlan
from tierwise.learning.models import Vectors, choose, fit_predictor, relative_costs, strong_win_rate
from tierwise.learning.outcomes import OutcomeTable
from tierwise.learning.store import make_embedder
from tierwise.learning.train import table_vectors

COST_WEIGHTS = (0.0, 0.01, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)
SEED_MARGINS = (-0.1, 0.1)
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class RouterSpec:
    kind: str
    method: str = ""
    embedder: str = "hashing"

    def __str__(self) -> str:
        if self.kind == "learned":
            return f"learned:{self.method}:{self.embedder}"
        return self.kind if self.kind == "heuristic" else f"{self.kind}:{self.embedder}"


def parse_spec(spec: str) -> RouterSpec:
    """`learned:<method>:<embedder>`, `heuristic` or `embedding-centroid:<embedder>`."""
    parts = spec.strip().split(":")
    if parts[0] == "learned" and len(parts) in (2, 3):
        return RouterSpec("learned", parts[1], parts[2] if len(parts) == 3 else "hashing")
    if parts[0] == "heuristic" and len(parts) == 1:
        return RouterSpec("heuristic")
    if parts[0] == "embedding-centroid" and len(parts) in (1, 2):
        return RouterSpec("embedding-centroid", "", parts[1] if len(parts) == 2 else "hashing")
    raise ValueError(
        f"unknown router spec {spec!r}; use learned:<method>:<embedder>, heuristic, "
        "embedding-centroid:<embedder>, or a saved router: a router file (.npz) or a "
        "router config (.yaml)"
    )


@dataclass(frozen=True, slots=True)
class Routed:
    """Held-out decisions over the evaluated rows: (label, param, choice) per operating
    point, the preference for the strong model (two models) and each row's fold."""

    choices: list[tuple[str, float, Index]]
    preference: Matrix
    groups: Index


@dataclass(frozen=True)
class EvalResult:
    router: str
    data: dict[str, Any]
    split: dict[str, Any]
    models: list[str]
    strong: str
    cheap: str
    cost_unit: str
    points: list[Point]
    baselines: list[Point]
    targets: dict[str, dict[str, float | str | None]]
    aiq: dict[str, float]
    two_model: dict[str, Any] | None
    prompt_ids: list[str]
    choices: list[tuple[str, float, Index]] = field(repr=False)
    groups: dict[str, dict[str, Any]] | None = None
    costs: Matrix | None = field(default=None, repr=False)


def eval_costs(table: OutcomeTable, strong: int) -> tuple[Matrix, str]:
    """Costs with empty cells at the model's mean; strong calls when a model has none."""
    means = table.mean_costs()
    if np.isnan(means).any():
        unit = np.where(np.arange(len(table.models)) == strong, 1.0, 0.0)
        return np.tile(unit, (len(table), 1)), "strong_calls"
    return np.where(np.isnan(table.costs), means[None, :], table.costs), "usd_per_request"


def pick_models(table: OutcomeTable, strong: str | None, cheap: str | None) -> tuple[int, int]:
    """(strong, cheap) indices: the given names, else the best mean score and the
    lowest mean cost among the others."""
    for role, name in (("strong", strong), ("cheap", cheap)):
        if name is not None and name not in table.models:
            raise ValueError(
                f"{role} model {name!r} is not in the table; its models: {', '.join(table.models)}"
            )
    means = table.mean_scores()
    if not strong and np.isnan(means).all():
        raise ValueError("no model has a score; name the strong model (--strong)")
    s = table.models.index(strong) if strong else int(np.nanargmax(means))
    if cheap:
        c = table.models.index(cheap)
        if c == s:
            raise ValueError(f"the strong and the cheap model are both {cheap!r}")
        return s, c
    costs = np.nan_to_num(table.mean_costs(), nan=0.0)
    others = [j for j in range(len(table.models)) if j != s]
    return s, min(others, key=lambda j: (costs[j], j))


def evaluate(
    table: OutcomeTable,
    router_spec: str,
    *,
    folds: int = 5,
    seed: int = 0,
    train_table: OutcomeTable | None = None,
    strong: str | None = None,
    cheap: str | None = None,
    router_tax: float = 0.0,
    holdout_by: str | None = None,
    holdout: str | None = None,
) -> EvalResult:
    """Held-out operating points of `router_spec` on `table`, with baselines and the
    two-model (APGR, CPT) and N-model (AIQ) summaries. `holdout_by` evaluates each
    group (or only `holdout`) with a router fitted on the other groups. A saved router
    file is evaluated by `tierwise.evaluation.saved.evaluate_any`."""
    spec = parse_spec(router_spec)
    s, c = pick_models(table, strong, cheap)
    costs, unit = eval_costs(table, s)
    plan = split_plan(table, train_table, folds, seed, holdout_by, holdout)
    rows = plan.rows
    routed = route(spec, table, costs, plan, s, c, seed, train_table)
    by_group = None
    if plan.info["kind"] == "holdout":
        scores = table.scores[rows]
        by_group = splits.group_metrics(plan, scores, costs[rows], routed, table.models, s, c)
    return result_of(
        table, str(spec), plan.info, (s, c), (costs, unit), rows, routed, router_tax, by_group
    )


def result_of(
    table: OutcomeTable,
    label: str,
    split: dict[str, Any],
    sc: tuple[int, int],
    costs_unit: tuple[Matrix, str],
    rows: Index,
    routed: Routed,
    router_tax: float,
    by_group: dict[str, Any] | None = None,
) -> EvalResult:
    """The points, baselines and summaries of `routed`'s choices on `rows`."""
    s, c = sc
    costs, unit = costs_unit
    scores = table.scores[rows]
    points = m.sweep(scores, costs[rows], routed.choices, table.models, s, router_tax)
    baselines = baseline_points(scores, costs[rows], table.models, s)
    return EvalResult(
        label,
        {"hash": table.content_hash, "prompts": len(table), "evaluated": int(rows.size)},
        split,
        list(table.models),
        table.models[s],
        table.models[c],
        unit,
        points,
        baselines,
        m.quality_targets(points, baselines[s]),
        aiq_summary(points, baselines, len(table.models)),
        _two_model(scores, routed, s, c) if len(table.models) == 2 else None,
        [table.prompt_ids[i] for i in rows],
        routed.choices,
        by_group,
        costs[rows],
    )


def split_plan(
    table: OutcomeTable,
    train_table: OutcomeTable | None,
    folds: int,
    seed: int,
    holdout_by: str | None,
    holdout: str | None,
) -> SplitPlan:
    """Folds, a separate training table, or leave-one-group-out."""
    if holdout is not None and holdout_by is None:
        raise ValueError("--holdout needs --holdout-by (e.g. source_benchmark)")
    if holdout_by is not None:
        if train_table is not None:
            raise ValueError("hold out by group or train on a separate table, not both")
        return splits.holdout_plan(table, holdout_by, holdout, seed)
    rows = evaluated_rows(table, train_table)
    if train_table is not None:
        return splits.separate_plan(rows, train_table.content_hash)
    return splits.fold_plan(table, rows, folds, seed)


def evaluated_rows(table: OutcomeTable, train_table: OutcomeTable | None) -> Index:
    """Rows where every model has a score (and, with `train_table`, that it lacks)."""
    complete: Mask = np.asarray(~np.isnan(table.scores).any(axis=1))
    if train_table is not None:
        if list(train_table.models) != list(table.models):
            raise ValueError("the training table's models differ from the evaluated table's")
        ids, texts = set(train_table.prompt_ids), set(train_table.texts)
        pairs = zip(table.prompt_ids, table.texts, strict=True)
        unseen = [p not in ids and t not in texts for p, t in pairs]
        complete &= np.array(unseen, dtype=bool)
    if not complete.any():
        raise ValueError("no prompt left to evaluate (every model scored and not trained on)")
    rows: Index = np.flatnonzero(complete)
    return rows


def _two_model(scores: Matrix, routed: Routed, s: int, c: int) -> dict[str, Any]:
    summary = m.two_model_summary(scores[:, c], scores[:, s], routed.preference, routed.groups)
    return summary


def baseline_points(scores: Matrix, costs: Matrix, models: Sequence[str], s: int) -> list[Point]:
    """Each single model (in table order), the random mix and the per-prompt oracle."""
    n = len(scores)
    singles = [
        m.point(f"always {name}", j, scores, costs, np.full(n, j, np.intp), models, s)
        for j, name in enumerate(models)
    ]
    oracle = m.point("oracle", 0, scores, costs, m.oracle_choice(scores, costs, s), models, s)
    return singles + m.random_mix(singles, s) + [oracle]


def aiq_summary(points: list[Point], baselines: list[Point], n_models: int) -> dict[str, float]:
    """AIQ over the single models' cost range: the router, the singles' hull, random."""
    singles = baselines[:n_models]
    lo, hi = min(p.cost for p in singles), max(p.cost for p in singles)
    randoms = [p for p in baselines if p.label.startswith("random")]

    def area(group: Sequence[Point]) -> float:
        xs = np.array([p.cost for p in group])
        return m.aiq(xs, np.array([p.quality for p in group]), (lo, hi))

    return {"router": area(points), "single_models": area(singles), "random": area(randoms)}


def route(
    spec: RouterSpec,
    table: OutcomeTable,
    costs: Matrix,
    plan: SplitPlan,
    s: int,
    c: int,
    seed: int,
    train_table: OutcomeTable | None,
) -> Routed:
    """Held-out decisions of `spec` on the plan's rows."""
    texts = [table.texts[i] for i in plan.rows]
    if spec.kind == "heuristic":
        return heuristic_routed(texts, s, c)
    if spec.kind == "embedding-centroid":
        return centroid_routed(texts, spec.embedder, s, c)
    if train_table is not None:
        return learned_separate(spec, train_table, table, plan.rows, s, c, seed)
    return learned_held_out(spec, table, costs, plan, s, c, seed)


def heuristic_routed(texts: Sequence[str], s: int, c: int) -> Routed:
    """The seed rules on each text: short goes cheap, a keyword goes strong, else cheap."""
    from tierwise.routing.heuristic import STRONGEST, Features, seed_rules

    rules = seed_rules()
    strong = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        features = _features(text, Features)
        tier = next((r.tier for r in rules if r.matches(features) is not None), None)
        strong[i] = tier == STRONGEST
    choice: Index = np.where(strong, s, c).astype(np.intp)
    return Routed([("seed rules", 0.0, choice)], strong.astype(np.float64), _zeros(len(texts)))


def _features(text: str, features: Any) -> Any:
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    share = non_ascii / len(text) if text else 0.0
    return features(text, text.lower(), len(text), 1, False, False, None, "```" in text, share)


def _zeros(n: int) -> Index:
    return np.zeros(n, dtype=np.intp)


def centroid_routed(texts: Sequence[str], embedder_name: str, s: int, c: int) -> Routed:
    """Similarity to the seed's complex minus simple example centroid; the seed margins
    and deciles of that difference are the operating points."""
    from tierwise.routing.embedding import COMPLEX_EXAMPLES, SIMPLE_EXAMPLES

    embedder = make_embedder(embedder_name)
    x = embedder.embed(list(texts)).astype(np.float64)
    centroids = [
        embedder.embed(list(ex)).astype(np.float64).mean(axis=0)
        for ex in (SIMPLE_EXAMPLES, COMPLEX_EXAMPLES)
    ]
    sims = [x @ (v / max(float(np.linalg.norm(v)), 1e-12)) for v in centroids]
    preference: Matrix = sims[1] - sims[0]
    cuts = [(f"seed margin {g:g}", float(g)) for g in SEED_MARGINS]
    qs = np.quantile(preference, np.linspace(0.0, 1.0, 11))
    cuts += [(f"decile {k}", float(q)) for k, q in enumerate(qs)] + [("all strong", -math.inf)]
    choices = [(lb, t, _threshold(preference, t, s, c)) for lb, t in cuts]
    return Routed(choices, preference, _zeros(len(texts)))


def _threshold(preference: Matrix, threshold: float, s: int, c: int) -> Index:
    choice: Index = np.where(preference > threshold, s, c).astype(np.intp)
    return choice


def table_embeddings(table: OutcomeTable, embedder: Embedder) -> Vectors:
    """The table's embeddings, through the embedding cache."""
    return table_vectors(table, embedder)


def held_out(
    spec: RouterSpec, table: OutcomeTable, costs: Matrix, plan: SplitPlan, seed: int
) -> tuple[Matrix, Matrix]:
    """Per evaluated row: predicted scores from the fit that held it out; per fit the
    relative model costs of its training rows (rows without any score are skipped)."""
    x = table_embeddings(table, make_embedder(spec.embedder))
    p = np.zeros((len(plan.rows), len(table.models)))
    relative = np.zeros((len(plan.train), len(table.models)))
    for k, given in enumerate(plan.train):
        at = np.flatnonzero(plan.part == k)
        train = given[~np.isnan(table.scores[given]).all(axis=1)]
        if not at.size or not train.size:
            continue
        rng = np.random.default_rng([seed, k])
        fitted = fit_predictor(spec.method, x[train], table.scores[train], rng, {})
        p[at] = fitted.predict(x[plan.rows[at]])
        relative[k] = relative_costs(np.nanmean(costs[train], axis=0))
    return p, relative


def choose_by_fold(p: Matrix, groups: Index, relative: Matrix, weight: float) -> Index:
    """`choose` per fold with that fold's relative costs."""
    picked = _zeros(len(p))
    for fold in np.unique(groups):
        rows = groups == fold
        picked[rows] = choose(p[rows], relative[fold], weight)
    return picked


def learned_held_out(
    spec: RouterSpec,
    table: OutcomeTable,
    costs: Matrix,
    plan: SplitPlan,
    s: int,
    c: int,
    seed: int,
) -> Routed:
    """Held-out predictions (one fit per fold or group), decided per cost weight."""
    p, relative = held_out(spec, table, costs, plan, seed)
    choices = [(f"w={w:g}", w, choose_by_fold(p, plan.part, relative, w)) for w in COST_WEIGHTS]
    return Routed(choices, strong_win_rate(p, c, s), plan.part)


def learned_separate(
    spec: RouterSpec,
    train_table: OutcomeTable,
    table: OutcomeTable,
    rows: Index,
    s: int,
    c: int,
    seed: int,
) -> Routed:
    """Fitted on all of `train_table`, applied to `rows` of `table`."""
    embedder = make_embedder(spec.embedder)
    rng = np.random.default_rng(seed)
    x = table_embeddings(train_table, embedder)
    fitted = fit_predictor(spec.method, x, train_table.scores, rng, {})
    p = fitted.predict(table_embeddings(table, embedder)[rows])
    train_costs, _ = eval_costs(train_table, s)
    relative = relative_costs(train_costs.mean(axis=0))
    choices = [(f"w={w:g}", w, choose(p, relative, w)) for w in COST_WEIGHTS]
    return Routed(choices, strong_win_rate(p, c, s), _zeros(len(rows)))


def clean_json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def point_json(p: Point, reference: Point) -> dict[str, Any]:
    return {
        "label": p.label,
        "param": p.param,
        "quality": p.quality,
        "cost": p.cost,
        "cost_share_of_strong": m.cost_of(p, reference),
        "quality_share_of_strong": p.quality / reference.quality if reference.quality else None,
        "strong_share": p.strong_share,
        "shares": p.shares,
    }


def to_json(result: EvalResult) -> dict[str, Any]:
    """The content of metrics.json (see docs/evaluation.md); NaN becomes null."""
    strong = result.baselines[result.models.index(result.strong)]
    data: dict[str, Any] = clean_json(
        {
            "format": "tierwise-eval",
            "format_version": 1,
            "router": result.router,
            "data": result.data,
            "split": result.split,
            "models": result.models,
            "strong": result.strong,
            "cheap": result.cheap,
            "cost_unit": result.cost_unit,
            "points": [point_json(p, strong) for p in result.points],
            "baselines": [point_json(p, strong) for p in result.baselines],
            "targets": result.targets,
            "aiq": result.aiq,
            "two_model": result.two_model,
            "groups": result.groups,
        }
    )
    return data
