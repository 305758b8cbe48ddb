"""Cost-quality metrics of per-prompt routing choices: pure functions over arrays.

`scores` and `costs` are (prompts, models) matrices; a choice vector holds one model
index per prompt. Quality is the mean score of the chosen models, cost the mean USD per
request (unknown cells skipped), plus a per-prompt router tax when given.

Two models (RouteLLM): prompts are ranked by a router's preference for the strong model
and the top share goes to it. PGR(share) = (quality - weak) / (strong - weak); APGR is
the area under PGR over the share of strong calls in [0, 1] (trapezoid rule; random
routing gives 0.5); CPT(x) is the smallest share of strong calls with PGR >= x. Ties in
the ranking count at their expected value (random order within a tie).

N models (RouterBench): AIQ is the area under the non-decreasing upper convex hull of
the (cost, quality) points over a cost range, divided by the range's width; the hull is
extended flat beyond its first and last point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
SHARES: Matrix = np.linspace(0.0, 1.0, 101)
TARGETS = (0.95, 0.99)
CPT_LEVELS = (0.5, 0.8, 0.95)


@dataclass(frozen=True, slots=True)
class Point:
    """One operating point: `param` is the threshold or cost weight that produced it."""

    label: str
    param: float
    quality: float
    cost: float
    strong_share: float
    shares: dict[str, float] = field(default_factory=dict)


def nanmean(values: Matrix) -> float:
    known = values[~np.isnan(values)]
    return float(known.mean()) if known.size else math.nan


def quality_cost(
    scores: Matrix, costs: Matrix, choice: Index, tax: Matrix | float | None = None
) -> tuple[float, float]:
    """Mean score and mean cost (plus tax) of picking model `choice[i]` for row i."""
    rows = np.arange(len(choice))
    picked_cost = costs[rows, choice] + (0.0 if tax is None else tax)
    return nanmean(scores[rows, choice]), nanmean(np.asarray(picked_cost, dtype=np.float64))


def point(
    label: str,
    param: float,
    scores: Matrix,
    costs: Matrix,
    choice: Index,
    models: Sequence[str],
    strong: int,
    tax: Matrix | float | None = None,
) -> Point:
    """The operating point of one choice vector."""
    quality, cost = quality_cost(scores, costs, choice, tax)
    counts = np.bincount(choice, minlength=len(models)) / max(len(choice), 1)
    shares = {m: float(c) for m, c in zip(models, counts, strict=True)}
    return Point(label, float(param), quality, cost, float(counts[strong]), shares)


def sweep(
    scores: Matrix,
    costs: Matrix,
    choices: Sequence[tuple[str, float, Index]],
    models: Sequence[str],
    strong: int,
    tax: Matrix | float | None = None,
) -> list[Point]:
    """Operating points of (label, param, choice) triples."""
    return [point(lb, p, scores, costs, c, models, strong, tax) for lb, p, c in choices]


def cost_of(p: Point, reference: Point) -> float:
    """A point's cost as a share of `reference` (USD when known, else strong calls)."""
    if math.isfinite(p.cost) and math.isfinite(reference.cost) and reference.cost:
        return p.cost / reference.cost
    return p.strong_share / reference.strong_share if reference.strong_share else math.nan


def cheapest_at(points: Sequence[Point], floor: float, reference: Point) -> Point | None:
    """The cheapest point with quality >= floor (cost as in `cost_of`)."""
    ok = [p for p in points if p.quality >= floor - 1e-12]
    return min(ok, key=lambda p: (cost_of(p, reference), -p.quality)) if ok else None


def quality_targets(
    points: Sequence[Point], strong: Point, targets: Sequence[float] = TARGETS
) -> dict[str, dict[str, float | str | None]]:
    """Per target share of the strong model's quality: the cheapest point reaching it
    and its cost as a share of always-strong."""
    out: dict[str, dict[str, float | str | None]] = {}
    for target in targets:
        best = cheapest_at(points, target * strong.quality, strong)
        out[f"{target:g}"] = {
            "label": None if best is None else best.label,
            "param": None if best is None else best.param,
            "quality": None if best is None else best.quality,
            "cost_share_of_strong": None if best is None else cost_of(best, strong),
        }
    return out


def gain_curve(weak: Matrix, strong: Matrix, preference: Matrix, shares: Matrix) -> Matrix:
    """Mean quality when the top `share` of rows by `preference` go to the strong model,
    at each of `shares`; ties count at their expected value."""
    n = len(weak)
    if n == 0:
        return np.full(len(shares), np.nan)
    order = np.argsort(-preference, kind="stable")
    gains = (strong - weak)[order]
    ranked = preference[order]
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]) + 1, n)
    x = np.concatenate([[0], ends]).astype(np.float64)
    y = np.concatenate([[0.0], np.cumsum(gains)[ends - 1]])
    result: Matrix = (weak.sum() + np.interp(shares * n, x, y)) / n
    return result


def pooled_curve(
    weak: Matrix, strong: Matrix, preference: Matrix, groups: Index, shares: Matrix = SHARES
) -> Matrix:
    """`gain_curve` per group (fold; preferences compare only within one), weighted by
    group size."""
    total = np.zeros(len(shares))
    for g in np.unique(groups):
        rows = groups == g
        total += rows.sum() * gain_curve(weak[rows], strong[rows], preference[rows], shares)
    result: Matrix = total / max(len(weak), 1)
    return result


def pgr(curve: Matrix, q_weak: float, q_strong: float) -> Matrix:
    """Performance gap recovered for each quality in `curve`."""
    gap = q_strong - q_weak
    result: Matrix = (curve - q_weak) / gap if gap else np.full(len(curve), np.nan)
    return result


def apgr(pgr_values: Matrix, shares: Matrix = SHARES) -> float:
    """Area under PGR over the share of strong calls (trapezoid rule)."""
    return float(np.trapezoid(pgr_values, shares))


def cpt(pgr_values: Matrix, level: float, shares: Matrix = SHARES) -> float:
    """Smallest share of strong calls with PGR >= level (NaN when never reached)."""
    reached = np.flatnonzero(pgr_values >= level - 1e-12)
    return float(shares[reached[0]]) if len(reached) else math.nan


def two_model_summary(
    weak: Matrix, strong: Matrix, preference: Matrix, groups: Index
) -> dict[str, object]:
    """APGR, CPT at 50/80/95% and the quality curve over the share of strong calls."""
    curve = pooled_curve(weak, strong, preference, groups)
    values = pgr(curve, float(weak.mean()), float(strong.mean()))
    return {
        "apgr": apgr(values),
        "cpt": {f"{level:.0%}": cpt(values, level) for level in CPT_LEVELS},
        "quality_weak": float(weak.mean()),
        "quality_strong": float(strong.mean()),
        "curve": [[float(s), float(q)] for s, q in zip(SHARES, curve, strict=True)],
    }


def upper_hull(costs: Matrix, qualities: Matrix) -> tuple[Matrix, Matrix]:
    """Vertices of the non-decreasing upper convex hull of the points, by cost."""
    keep = np.isfinite(costs) & np.isfinite(qualities)
    order = np.lexsort((-qualities[keep], costs[keep]))
    xs, ys = costs[keep][order], qualities[keep][order]
    hull: list[tuple[float, float]] = []
    for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
        if hull and y <= hull[-1][1]:
            continue
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], (x, y)) >= 0:
            hull.pop()
        hull.append((x, y))
    return np.array([h[0] for h in hull]), np.array([h[1] for h in hull])


def _cross(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def aiq(costs: Matrix, qualities: Matrix, cost_range: tuple[float, float] | None = None) -> float:
    """Area under the cost-quality hull over `cost_range` (default: the points' own
    range) divided by its width; one point (or a zero-width range): its quality."""
    xs, ys = upper_hull(costs, qualities)
    if not len(xs):
        return math.nan
    finite = costs[np.isfinite(costs) & np.isfinite(qualities)]
    lo, hi = cost_range if cost_range is not None else (float(finite.min()), float(finite.max()))
    if hi <= lo:
        return float(np.interp(lo, xs, ys))
    inner = xs[(xs > lo) & (xs < hi)]
    grid = np.concatenate([[lo], inner, [hi]])
    return float(np.trapezoid(np.interp(grid, xs, ys), grid) / (hi - lo))


def random_mix(singles: Sequence[Point], strong: int) -> list[Point]:
    """Expected points of sending each prompt to the strong model with probability s
    and to the cheapest single model otherwise, s in SHARES (two endpoints when N > 2
    mix those two)."""
    cheap = min(range(len(singles)), key=lambda j: _cost_key(singles[j], singles[strong]))
    a, b = singles[cheap], singles[strong]
    return [
        Point(
            f"random {s:.0%} strong",
            float(s),
            (1 - s) * a.quality + s * b.quality,
            (1 - s) * a.cost + s * b.cost,
            float(s) if cheap != strong else 1.0,
        )
        for s in SHARES[::10]
    ]


def _cost_key(p: Point, reference: Point) -> float:
    value = cost_of(p, reference)
    return value if math.isfinite(value) else math.inf


def oracle_choice(scores: Matrix, costs: Matrix, strong: int) -> Index:
    """Per prompt the best-scoring model, the cheapest among ties (unknown costs count
    as the strong model's when costs are unknown, so ties go to a cheaper model)."""
    filled = np.where(np.isnan(costs), np.inf, costs)
    if np.isinf(filled).all():
        filled = np.where(np.arange(scores.shape[1]) == strong, 1.0, 0.0)[None, :].repeat(
            len(scores), axis=0
        )
    safe = np.nan_to_num(scores, nan=-1.0)
    best = safe.max(axis=1, keepdims=True)
    picked: Index = np.argmin(np.where(safe >= best, filled, np.inf), axis=1)
    return picked
