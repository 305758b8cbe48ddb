"""Choose a learned router's operating point from outcome data to hit a target.

Targets: a share of strong-model calls, a quality floor relative to always-strong
(e.g. 0.97), or a budget per 1,000 requests (in the table's cost unit). Two models: a
threshold on the strong win rate (RouteLLM), also given as the equivalent cost weight;
more models: a cost weight. Predictions are held out (K-fold, grouped by prompt text)
for a spec, or come from a trained router file (in-sample when trained on the same
table). The 95% intervals come from a seeded bootstrap over prompts: the metrics at
the chosen value, and the value chosen again on each resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tierwise.evaluation.metrics import Index, Matrix
from tierwise.evaluation.runner import (
    _evaluated_rows,
    choose_by_fold,
    eval_costs,
    held_out,
    parse_spec,
    pick_models,
)
from tierwise.learning.models import relative_costs, strong_win_rate
from tierwise.learning.outcomes import OutcomeTable

KINDS = ("strong_share", "quality_floor", "budget_per_1k")
WEIGHT_GRID: Matrix = np.concatenate([[0.0], np.geomspace(1e-3, 5.0, 80)])


@dataclass(frozen=True, slots=True)
class Target:
    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown target {self.kind!r}; known: {', '.join(KINDS)}")


@dataclass(frozen=True, slots=True)
class Candidates:
    """Per candidate value (rows of each matrix), per prompt: score, cost, strong call."""

    knob: str
    values: Matrix
    quality: Matrix
    cost: Matrix
    strong: Matrix
    strong_quality: Matrix


def select(means: tuple[Matrix, Matrix, Matrix], strong_q: float, target: Target) -> int:
    """Index of the candidate meeting `target` (quality, cost, strong-share means)."""
    quality, cost, share = means
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
    q, c, s = (weights @ m.T for m in (cand.quality, cand.cost, cand.strong))
    sq = weights @ cand.strong_quality
    again = [cand.values[select((q[b], c[b], s[b]), float(sq[b]), target)] for b in range(samples)]

    def interval(values: Matrix) -> tuple[float, float]:
        low, high = np.percentile(values, [2.5, 97.5])
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
    quality = np.stack([scores[rows, ch] for ch in choices])
    cost = np.stack([costs[rows, ch] for ch in choices])
    strong = np.stack([(ch == s).astype(np.float64) for ch in choices])
    return Candidates(knob, values, quality, cost, strong, scores[:, s])


def threshold_grid(win: Matrix) -> Matrix:
    """Thresholds sending from every prompt down to none to the strong model."""
    inner = np.quantile(win, np.linspace(0.0, 1.0, 201))
    grid: Matrix = np.unique(np.concatenate([[-math.inf], inner]))
    return grid


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


def predictions(
    table: OutcomeTable,
    rows: Index,
    costs: Matrix,
    spec: str | None,
    router_file: Path | None,
    folds: int,
    seed: int,
) -> tuple[Matrix, Index, Matrix, Matrix, str]:
    """(p, fold per row, relative costs per fold, relative costs to deploy, split)."""
    if spec is not None:
        parsed = parse_spec(spec)
        if parsed.kind != "learned":
            raise ValueError("calibrate needs a learned router: learned:<method>:<embedder>")
        p, groups, by_fold = held_out(parsed, table, costs, rows, folds, seed)
        split = f"held out, {folds}-fold grouped by prompt text, seed {seed}"
        return p, groups, by_fold, relative_costs(costs.mean(axis=0)), split
    if router_file is None:
        raise ValueError("give a router spec or a router file")
    from tierwise.learning.store import load_router, make_embedder
    from tierwise.learning.train import embed_table

    router = load_router(router_file)
    if sorted(router.models) != sorted(table.models):
        raise ValueError(f"router models {router.models} differ from the table's {table.models}")
    order = [router.models.index(name) for name in table.models]
    x = embed_table(table.subset(rows), make_embedder(router.embedder_name))
    p = router.predict(x)[:, order]
    relative = router.relative_costs[order]
    same = router.data_hash == table.content_hash
    split = "in-sample (router trained on this table)" if same else "router file on this table"
    return p, np.zeros(len(rows), dtype=np.intp), relative[None, :], relative, split


def calibrate(
    table: OutcomeTable,
    target: Target,
    *,
    spec: str | None = None,
    router_file: Path | None = None,
    folds: int = 5,
    seed: int = 0,
    samples: int = 200,
) -> Calibration:
    """The operating point meeting `target`, with bootstrap intervals."""
    s, c = pick_models(table, None, None)
    costs, unit = eval_costs(table, s)
    rows = _evaluated_rows(table, None)
    p, groups, by_fold, deploy, split = predictions(
        table, rows, costs, spec, router_file, folds, seed
    )
    scores = table.scores[rows]
    if len(table.models) == 2:
        values = threshold_grid(strong_win_rate(p, c, s))
        win = strong_win_rate(p, c, s)
        choices = [np.where(win > t, s, c).astype(np.intp) for t in values]
        knob = "strong_win_rate_threshold"
    else:
        values = WEIGHT_GRID
        choices = [choose_by_fold(p, groups, by_fold, float(w)) for w in values]
        knob = "cost_weight"
    cand = candidates(scores, costs[rows], choices, values, knob, s)
    means = (cand.quality.mean(axis=1), cand.cost.mean(axis=1), cand.strong.mean(axis=1))
    strong_q = float(cand.strong_quality.mean())
    chosen = select(means, strong_q, target)
    value = float(values[chosen])
    weight = value if knob == "cost_weight" else weight_for_threshold(value, deploy, s, c)
    return Calibration(
        spec or str(router_file),
        target,
        knob,
        value,
        weight,
        met(chosen, means, strong_q, target),
        float(means[0][chosen]),
        float(means[0][chosen]) / strong_q if strong_q else math.nan,
        float(means[1][chosen]) * 1000.0,
        float(means[2][chosen]),
        unit,
        bootstrap(cand, target, chosen, seed, samples),
        len(rows),
        split,
        list(table.models),
    )


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
    router: dict[str, Any] = {
        "kind": "learned",
        "path": router_path,
        "models": {name: name for name in result.models},
    }
    if result.cost_weight is not None:
        router["cost_weight"] = round(result.cost_weight, 6)
    else:
        lines.append("# no cost weight decides like this threshold (unknown or equal costs)")
    body = yaml.safe_dump({"router": router}, sort_keys=False, allow_unicode=True)
    return "\n".join(lines) + "\n" + body


def _unit(cost_unit: str) -> str:
    return "USD" if cost_unit == "usd_per_request" else "strong-model calls"
