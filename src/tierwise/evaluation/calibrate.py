"""Choose a learned router's operating point from outcome data to hit a target.

Targets: a share of strong-model calls, a quality floor relative to always-strong
(e.g. 0.97), or a budget per 1,000 requests (in the table's cost unit). Two models: a
threshold on the strong win rate (RouteLLM; a strong-share target s takes the (1 - s)
quantile of the win rates), written as the equivalent cost weight when there is one,
else as the threshold; more models: a cost weight. Predictions are held out (K-fold,
grouped by prompt text) for a spec, or come from a trained router file (in-sample
when trained on the same table). A row's score counts for quality only where it is
known for the chosen model (always, on a complete table; on a request log, where the
choice is the model that served it). The 95% intervals come from a seeded bootstrap
over prompts: the metrics at the chosen value, and the value chosen again on each
resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tierwise.evaluation.metrics import Index, Matrix
from tierwise.evaluation.operating import Curve, Outcomes, threshold_curve, weight_curve
from tierwise.evaluation.runner import (
    choose_by_fold,
    eval_costs,
    evaluated_rows,
    held_out,
    parse_spec,
    pick_models,
)
from tierwise.evaluation.splits import fold_plan
from tierwise.learning.models import relative_costs, strong_win_rate
from tierwise.learning.outcomes import OutcomeTable

KINDS = ("strong_share", "quality_floor", "budget_per_1k")


@dataclass(frozen=True, slots=True)
class Target:
    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown target {self.kind!r}; known: {', '.join(KINDS)}")


@dataclass(frozen=True, slots=True)
class Candidates:
    """Per candidate value (rows of each matrix), per prompt: score (0 where unknown),
    whether it counts (known), cost and strong call; the strong model's score and
    whether it counts."""

    knob: str
    values: Matrix
    quality: Matrix
    counted: Matrix
    cost: Matrix
    strong: Matrix
    strong_quality: Matrix
    strong_counted: Matrix

    def means(self, weights: Matrix) -> tuple[Matrix, Matrix, Matrix, Matrix]:
        """Weighted (rows of `weights`: prompts) quality, cost, strong share per
        candidate, and the strong model's quality."""
        with np.errstate(invalid="ignore", divide="ignore"):
            quality = (weights @ self.quality.T) / (weights @ self.counted.T)
            strong_q = (weights @ self.strong_quality) / (weights @ self.strong_counted)
        return quality, weights @ self.cost.T, weights @ self.strong.T, strong_q

    def overall(self) -> tuple[tuple[Matrix, Matrix, Matrix], float]:
        """(quality, cost, strong share) per candidate over all prompts, and the
        strong model's quality."""
        n = self.quality.shape[1]
        quality, cost, share, strong_q = self.means(np.full((1, n), 1.0 / n))
        return (quality[0], cost[0], share[0]), float(strong_q[0])


def select(means: tuple[Matrix, Matrix, Matrix], strong_q: float, target: Target) -> int:
    """Index of the candidate meeting `target` (quality, cost, strong-share means)."""
    quality, cost, share = means
    quality = np.nan_to_num(quality, nan=-np.inf)
    if target.kind == "strong_share":
        return int(np.lexsort((share, np.abs(share - target.value)))[0])
    if target.kind == "quality_floor":
        ok = quality >= target.value * strong_q - 1e-12
        if not ok.any():
            return int(np.argmax(quality))
        return int(np.lexsort((-quality, np.where(ok, cost, np.inf)))[0])
    ok = cost * 1000.0 <= target.value + 1e-12
    if not ok.any():
        return int(np.argmin(cost))
    return int(np.lexsort((cost, np.where(ok, -quality, np.inf)))[0])


def met(index: int, means: tuple[Matrix, Matrix, Matrix], strong_q: float, t: Target) -> bool:
    quality, cost, share = (float(v[index]) for v in means)
    if t.kind == "quality_floor":
        return quality >= t.value * strong_q - 1e-12
    if t.kind == "budget_per_1k":
        return cost * 1000.0 <= t.value + 1e-12
    return abs(share - t.value) <= 0.02


def bootstrap(
    cand: Candidates, target: Target, chosen: int, seed: int, samples: int = 200
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of quality, cost, strong share at `chosen`, and of the
    value chosen again on each resample."""
    n = cand.quality.shape[1]
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=samples) / n
    q, c, s, sq = cand.means(weights)
    again = [cand.values[select((q[b], c[b], s[b]), float(sq[b]), target)] for b in range(samples)]

    def interval(values: Matrix) -> tuple[float, float]:
        known = values[np.isfinite(values)]
        if not known.size:
            return math.nan, math.nan
        low, high = np.percentile(known, [2.5, 97.5])
        return float(low), float(high)

    return {
        "quality": interval(q[:, chosen]),
        "cost_per_1k": interval(c[:, chosen] * 1000.0),
        "strong_share": interval(s[:, chosen]),
        "value": interval(np.array(again)),
    }


def candidates(
    scores: Matrix, costs: Matrix, choices: list[Index], values: Matrix, knob: str, s: int
) -> Candidates:
    rows = np.arange(len(scores))
    picked = np.stack([scores[rows, ch] for ch in choices])
    cost = np.stack([costs[rows, ch] for ch in choices])
    strong = np.stack([(ch == s).astype(np.float64) for ch in choices])
    known = (~np.isnan(picked)).astype(np.float64)
    strong_known = (~np.isnan(scores[:, s])).astype(np.float64)
    return Candidates(
        knob,
        values,
        np.nan_to_num(picked),
        known,
        cost,
        strong,
        np.nan_to_num(scores[:, s]),
        strong_known,
    )


def candidate_values(curve: Curve, extra: float | None = None, cap: int = 256) -> Matrix:
    """Values to calibrate among, from the exact curve (`tierwise.evaluation.operating`)
    rather than a grid: every interval on its cost-quality frontier (thinned evenly to
    `cap` when longer; quality unknown counts 0 there), 41 intervals spread over the
    whole curve (for strong-share targets), and `extra`."""
    order = np.lexsort((-curve.quality, curve.cost))
    best = np.maximum.accumulate(curve.quality[order])
    rising = np.concatenate([[True], best[1:] > best[:-1]])
    frontier = order[rising]
    if len(frontier) > cap:
        frontier = frontier[np.linspace(0, len(frontier) - 1, cap).round().astype(np.intp)]
    spread = np.linspace(0, len(curve) - 1, 41).round().astype(np.intp)
    more = [] if extra is None else [extra]
    picked = np.concatenate([curve.values[frontier], curve.values[spread], more])
    values: Matrix = np.unique(picked)
    return values


def share_threshold(win: Matrix, share: float) -> float:
    """RouteLLM's calibration: the (1 - share) quantile of the strong win rates."""
    return float(np.quantile(win, min(max(1.0 - share, 0.0), 1.0)))


def weight_for_threshold(threshold: float, relative: Matrix, s: int, c: int) -> float | None:
    """The cost weight deciding like `threshold` on the strong win rate (None if none)."""
    gap = float(relative[s] - relative[c])
    if gap <= 0 or not math.isfinite(threshold):
        return None
    weight = (2.0 * threshold - 1.0) / gap
    return weight if weight >= 0 else None


@dataclass(frozen=True)
class Calibration:
    source: str
    target: Target
    knob: str
    value: float
    cost_weight: float | None
    met: bool
    quality: float
    quality_share_of_strong: float
    cost_per_1k: float
    strong_share: float
    cost_unit: str
    intervals: dict[str, tuple[float, float]]
    prompts: int
    split: str
    models: list[str]
    strong: str = ""
    cheap: str = ""
    quality_prompts: int = 0


def predictions(
    table: OutcomeTable,
    rows: Index,
    costs: Matrix,
    spec: str | None,
    router_file: Path | None,
    folds: int,
    seed: int,
) -> tuple[Matrix, Index, Matrix, Matrix, str]:
    """(p, fold per row, relative costs per fold, relative costs to deploy, split); a
    router trained on the table deploys with its mean costs (unknown ones count 0)."""
    if spec is not None:
        parsed = parse_spec(spec)
        if parsed.kind != "learned":
            raise ValueError("calibrate needs a learned router: learned:<method>:<embedder>")
        plan = fold_plan(table, rows, folds, seed)
        p, by_fold = held_out(parsed, table, costs, plan, seed)
        split = f"held out, {folds}-fold grouped by prompt text, seed {seed}"
        return p, plan.part, by_fold, relative_costs(table.mean_costs()), split
    if router_file is None:
        raise ValueError("give a router spec or a router file")
    p, relative, split = file_predictions(table, rows, router_file)
    return p, np.zeros(len(rows), dtype=np.intp), relative[None, :], relative, split


def file_predictions(
    table: OutcomeTable, rows: Index, router_file: Path
) -> tuple[Matrix, Matrix, str]:
    """A trained router's predictions for `rows` and its relative costs, both in the
    table's model order (the router may know more models), and how it was split."""
    from tierwise.learning.store import load_router, make_embedder
    from tierwise.learning.train import table_vectors

    router = load_router(router_file)
    unknown = [name for name in table.models if name not in router.models]
    if unknown:
        raise ValueError(f"the router predicts {router.models}, not {unknown}")
    order = [router.models.index(name) for name in table.models]
    x = table_vectors(table, make_embedder(router.embedder_name))[rows]
    p = router.predict(x)[:, order]
    relative = relative_costs(router.mean_costs[order])
    same = router.data_hash == table.content_hash
    split = "in-sample (router trained on this table)" if same else "router file on this table"
    return p, relative, split


def calibrate(
    table: OutcomeTable,
    target: Target,
    *,
    spec: str | None = None,
    router_file: Path | None = None,
    folds: int = 5,
    seed: int = 0,
    samples: int = 200,
    strong: str | None = None,
    cheap: str | None = None,
    rows: Index | None = None,
) -> Calibration:
    """The operating point meeting `target`, with bootstrap intervals. `rows`: the
    rows to calibrate on (default: those where every model has a score)."""
    s, c = pick_models(table, strong, cheap)
    costs, unit = eval_costs(table, s)
    rows = evaluated_rows(table, None) if rows is None else rows
    p, groups, by_fold, deploy, split = predictions(
        table, rows, costs, spec, router_file, folds, seed
    )
    cand, chosen = sweep_knob(table.scores[rows], costs[rows], (p, groups, by_fold), target, s, c)
    means, sq = cand.overall()
    value = float(cand.values[chosen])
    weight = value if cand.knob == "cost_weight" else weight_for_threshold(value, deploy, s, c)
    return Calibration(
        spec or str(router_file),
        target,
        cand.knob,
        value,
        weight,
        met(chosen, means, sq, target),
        float(means[0][chosen]),
        float(means[0][chosen]) / sq if sq else math.nan,
        float(means[1][chosen]) * 1000.0,
        float(means[2][chosen]),
        unit,
        bootstrap(cand, target, chosen, seed, samples),
        len(rows),
        split,
        list(table.models),
        table.models[s],
        table.models[c],
        int(cand.counted[chosen].sum()),
    )


def sweep_knob(
    scores: Matrix,
    costs: Matrix,
    predicted: tuple[Matrix, Index, Matrix],
    target: Target,
    s: int,
    c: int,
) -> tuple[Candidates, int]:
    """The candidates (win-rate thresholds for two models, else cost weights) and the
    index of the one meeting `target`; a strong-share target on two models takes the
    (1 - share) quantile of the win rates."""
    p, groups, by_fold = predicted
    exact = None
    outcomes = Outcomes(np.nan_to_num(scores), costs, s)
    if p.shape[1] == 2:
        win = strong_win_rate(p, c, s)
        exact = share_threshold(win, target.value) if target.kind == "strong_share" else None
        values = candidate_values(threshold_curve(win, c, outcomes), exact)
        choices = [np.where(win > t, s, c).astype(np.intp) for t in values]
        knob = "threshold"
    else:
        values = candidate_values(weight_curve(p, groups, by_fold, outcomes))
        choices = [choose_by_fold(p, groups, by_fold, float(w)) for w in values]
        knob = "cost_weight"
    cand = candidates(scores, costs, choices, values, knob, s)
    if exact is not None:
        return cand, int(np.flatnonzero(values == exact)[0])
    means, strong_q = cand.overall()
    return cand, select(means, strong_q, target)


def _r(value: float) -> str:
    return f"{value:.6g}"


def snippet(result: Calibration, router_path: str = "router.npz") -> str:
    """A YAML router block with the chosen value; the evidence as comments."""
    ci = result.intervals
    lines = [
        f"# tierwise calibrate: {result.source} on {result.prompts} prompts ({result.split})",
        f"# target: {result.target.kind} {result.target.value:g} "
        f"({'met' if result.met else 'NOT met: closest point'})",
        f"# {result.knob}: {_r(result.value)} (95% CI {_r(ci['value'][0])} .. "
        f"{_r(ci['value'][1])})",
        f"# expected quality: {result.quality:.4f} ({result.quality_share_of_strong:.1%} of "
        f"strong; 95% CI {ci['quality'][0]:.4f} .. {ci['quality'][1]:.4f})",
        f"# expected cost per 1,000 requests ({_unit(result.cost_unit)}): {_r(result.cost_per_1k)} "
        f"(95% CI {_r(ci['cost_per_1k'][0])} .. {_r(ci['cost_per_1k'][1])})",
        f"# strong-model calls: {result.strong_share:.1%} (95% CI "
        f"{ci['strong_share'][0]:.1%} .. {ci['strong_share'][1]:.1%})",
    ]
    if result.quality_prompts < result.prompts:
        lines.append(f"# quality measured on {result.quality_prompts} prompts with a known score")
    router: dict[str, Any] = {
        "kind": "learned",
        "path": router_path,
        "models": {name: name for name in result.models},
    }
    if result.cost_weight is not None:
        router["cost_weight"] = round(result.cost_weight, 6)
    else:
        lines.append(
            f"# no cost weight decides like this threshold (unknown or equal costs): "
            f"{result.strong} when its win rate exceeds it, else {result.cheap}"
        )
        router["threshold"] = round(result.value, 6)
    body = yaml.safe_dump({"router": router}, sort_keys=False, allow_unicode=True)
    return "\n".join(lines) + "\n" + body


def _unit(cost_unit: str) -> str:
    return "USD" if cost_unit == "usd_per_request" else "strong-model calls"
