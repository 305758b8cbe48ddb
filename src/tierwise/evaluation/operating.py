"""Exact operating curves of a learned router, and the point meeting a quality target.

Cost weight: a prompt goes to the model with the best utility p_m - w x r_m (r_m: the
relative cost of the fit that predicted it; ties go to the cheaper model). As w grows
from 0 a prompt's choice changes only where two utilities cross, at w = (p_a - p_b) /
(r_a - r_b), so the whole curve is piecewise constant between these breakpoints: every
interval of weights is one candidate, nothing depends on a grid. Threshold (two models):
a prompt goes to the strong model when its strong win rate exceeds t; the breakpoints
are the win rates themselves.

Each candidate is represented by a value inside its interval (the midpoint; 0 for the
first weight interval; above the last breakpoint for the last), and keeps the interval
`[low, high)`: every value in it makes the same decisions on these prompts, which is
how stable the chosen point is. Breakpoints apart by float noise only count as one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from tierwise.learning.models import choose

Matrix = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Curve:
    """Per candidate (interval of the knob): its representative value, the interval,
    and the mean quality, mean cost and share of strong calls over the prompts."""

    knob: str
    values: Matrix
    low: Matrix
    high: Matrix
    quality: Matrix
    cost: Matrix
    strong: Matrix
    matched: Matrix | None = None
    """Per candidate, how many prompts' chosen model has a score (the replay mean's
    support); None when every prompt's does."""

    def __len__(self) -> int:
        return len(self.values)

    def cautious(self, z: float = 1.0) -> Curve:
        """This curve with each quality lowered by `z` standard errors of its replay
        mean (binomial bound on [0, 1] scores): a point judged on few prompts must
        clear the target by more."""
        if self.matched is None:
            return self
        q = np.nan_to_num(self.quality, nan=0.0)
        spread = np.sqrt(np.clip(q * (1.0 - q), 0.0, 0.25) / np.maximum(self.matched, 1.0))
        lowered = np.where(self.matched > 0, self.quality - z * spread, np.nan)
        return replace(self, quality=lowered)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What each prompt would get from each model: scores, costs; the strong model."""

    scores: Matrix
    costs: Matrix
    strong: int


def _crossings(p: Matrix, relative: Matrix, current: Index, allowed: Mask) -> Matrix:
    """Per row and model: the weight where the model's utility overtakes the current
    choice's (inf where it never does: not cheaper, or not allowed)."""
    rows = np.arange(len(p))
    r_now, p_now = relative[current], p[rows, current]
    gap = r_now[:, None] - relative[None, :]
    cheaper = (gap > 0) & allowed[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(cheaper, (p_now[:, None] - p) / np.where(cheaper, gap, 1.0), np.inf)
    return np.asarray(cross, dtype=np.float64)


def weight_events(
    p: Matrix, relative: Matrix, allowed: Mask | None = None
) -> tuple[Index, list[tuple[Matrix, Index, Index, Index]]]:
    """The choice at weight 0 per row, and the events (weight, row, from, to) where a
    row's choice changes as the weight grows (one relative-cost vector)."""
    ok: Mask = np.ones(p.shape[1], dtype=bool) if allowed is None else allowed
    current = choose(p, relative, 0.0, ok)
    start = current.copy()
    at = np.zeros(len(p))
    events = []
    order = np.argsort(relative, kind="stable")
    for _ in range(p.shape[1]):
        cross = _crossings(p, relative, current, ok)[:, order]
        cross = np.maximum(cross, at[:, None])
        best = cross.min(axis=1)
        moving = np.flatnonzero(np.isfinite(best))
        if not moving.size:
            break
        nxt = order[np.argmax(cross[moving] <= best[moving, None], axis=1)]
        events.append((best[moving], moving, current[moving].copy(), nxt))
        current[moving], at[moving] = nxt, best[moving]
    return start, events


def weight_curve(
    p: Matrix,
    groups: Index,
    relative: Matrix,
    outcomes: Outcomes,
    allowed: Mask | None = None,
) -> Curve:
    """The exact cost-weight curve of predictions `p` (rows), where row i was decided
    with the relative costs `relative[groups[i]]` (one row of `relative` per fit)."""
    n = len(p)
    choice = np.zeros(n, dtype=np.intp)
    parts: list[tuple[Matrix, Index, Index, Index]] = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        start, events = weight_events(p[rows], relative[g], allowed)
        choice[rows] = start
        parts += [(w, rows[r], a, b) for w, r, a, b in events]
    return _curve("cost_weight", choice, parts, outcomes, first_value=0.0)


def threshold_curve(win: Matrix, cheap: int, outcomes: Outcomes) -> Curve:
    """The exact curve of `strong when win rate > t` between `cheap` and the strong
    model: from every prompt to the strong model (t below every win rate) to none."""
    rows = np.arange(len(win))
    s = outcomes.strong
    choice = np.full(len(win), s, dtype=np.intp)
    event = (win.astype(np.float64), rows, np.full(len(win), s), np.full(len(win), cheap))
    return _curve("threshold", choice, [event], outcomes, first_value=-math.inf)


def _curve(
    knob: str,
    start: Index,
    parts: list[tuple[Matrix, Index, Index, Index]],
    outcomes: Outcomes,
    first_value: float,
) -> Curve:
    """Means per interval between the sorted breakpoints, from the start choices and
    the events (value, row, from, to) that change them. Quality is the mean over the
    rows whose chosen model has a score (every row, for a complete table)."""
    scores, costs, s = outcomes.scores, outcomes.costs, outcomes.strong
    known = (~np.isnan(scores)).astype(np.float64)
    scores = np.nan_to_num(scores, nan=0.0)
    n = max(len(start), 1)
    rows = np.arange(len(start))
    totals = [scores[rows, start].sum(), costs[rows, start].sum(), float((start == s).sum())]
    totals.append(known[rows, start].sum())
    if parts:
        w = np.concatenate([x[0] for x in parts])
        r, a, b = (np.concatenate([x[i] for x in parts]) for i in (1, 2, 3))
    else:
        w, r, a, b = np.zeros(0), np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.intp)
    deltas = [
        scores[r, b] - scores[r, a],
        costs[r, b] - costs[r, a],
        (b == s).astype(np.float64) - (a == s),
        known[r, b] - known[r, a],
    ]
    points, inverse = _merged(w)
    sums = [np.bincount(inverse, d, len(points)) for d in deltas]
    running = [np.concatenate([[t], t + np.cumsum(d)]) for t, d in zip(totals, sums, strict=True)]
    with np.errstate(invalid="ignore", divide="ignore"):
        quality = np.where(running[3] > 0, running[0] / np.maximum(running[3], 1.0), np.nan)
    low = np.concatenate([[first_value if knob == "threshold" else 0.0], points])
    high = np.concatenate([points, [math.inf]])
    values = _representatives(low, high, knob)
    matched = None if bool((known > 0).all()) else running[3]
    return Curve(knob, values, low, high, quality, running[1] / n, running[2] / n, matched)


def _merged(values: Matrix) -> tuple[Matrix, Index]:
    """The distinct breakpoints, where values apart by float noise only (1e-12 relative)
    count as one, and the index of each value's breakpoint."""
    points, inverse = np.unique(values, return_inverse=True)
    if len(points) < 2:
        return points, inverse.astype(np.intp)
    close = np.diff(points) <= 1e-12 * np.maximum(1.0, np.abs(points[1:]))
    group = np.concatenate([[0], np.cumsum(~close)])
    merged: Matrix = points[np.concatenate([[True], ~close])]
    return merged, group[inverse].astype(np.intp)


def _representatives(low: Matrix, high: Matrix, knob: str) -> Matrix:
    """A value inside each interval: the midpoint; for the first and last intervals a
    value kept within [0, 1] for thresholds (win rates are), else 0 and twice the last
    breakpoint (at least 1 above it)."""
    values = (low + high) / 2.0
    if knob == "cost_weight":
        values[0] = 0.0
        if len(low) > 1:
            values[-1] = low[-1] + max(1.0, abs(low[-1]))
        return np.asarray(values, dtype=np.float64)
    if len(high) > 1:
        values[0] = high[0] / 2.0 if high[0] > 0 else high[0] - 1.0
        values[-1] = (low[-1] + 1.0) / 2.0 if low[-1] < 1 else low[-1] + 1.0
    return np.asarray(values, dtype=np.float64)


def pick(curve: Curve, floor: float) -> int:
    """The cheapest candidate with quality >= `floor` (ties: the better quality, then
    the smaller value); with none, the best quality."""
    quality = np.nan_to_num(curve.quality, nan=-np.inf)
    ok = quality >= floor - 1e-12
    if not ok.any():
        return int(np.argmax(quality))
    order = np.lexsort((curve.values, -curve.quality, np.where(ok, curve.cost, np.inf)))
    return int(order[0])
