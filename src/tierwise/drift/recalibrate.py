"""Re-tune a router's threshold-like parameter from logged decisions.

A `Tunable` replays the router's decision rule on the scores it logged (`Decision.scores`)
for any value of its parameter, without the model or the embedder. `recalibrate_share`
finds the value whose replayed share of a tier is closest to a target:
  PreferenceThreshold  strong iff score > threshold: solved exactly, at the midpoint of the
                       two logged scores around the (1 - target) quantile.
  EmbeddingMargin      the embedding router's `margin`, replayed by its own `choose`.
  LearnedCostWeight    the learned router's `cost_weight`, replayed by `learning.models.choose`.
Other parameters are found by bisection, which assumes the share moves one way as the
parameter grows (true of the strongest tier's share for the margin and for the priciest
model's tier under cost_weight).

Guard rails: fewer replayable requests than `min_requests`, a target outside [0, 1] or
empty bounds raise ValueError. A target the bounds cannot reach is not an error: the
result holds the bound whose share comes closest, with `reachable` False.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tierwise.learning.models import TrainedRouter
from tierwise.learning.models import choose as choose_model
from tierwise.routing.embedding import choose as choose_tier

Scores = Mapping[str, float]


class Tunable(Protocol):
    """A router parameter and a pure replay of the router's decisions under it."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> float: ...

    def replay(self, logged_scores: Sequence[Scores], value: float) -> list[str | None]:
        """The tier each logged request would go to at `value`; None when its scores
        cannot be replayed (the router logged none, or not the ones this rule needs)."""
        ...


@runtime_checkable
class SolvesShare(Protocol):
    """A Tunable that can compute the value for a share directly (else: bisection)."""

    def solve_share(
        self, logged_scores: Sequence[Scores], strong_tier: str, target_share: float
    ) -> float | None: ...


@dataclass(frozen=True, slots=True)
class PreferenceThreshold:
    """Send to `strong` iff `scores[key] > threshold`, else to `weak` (a strong win rate
    or any preference score)."""

    value: float
    strong: str
    weak: str
    key: str = "strong_win_rate"

    @property
    def name(self) -> str:
        return "threshold"

    def replay(self, logged_scores: Sequence[Scores], value: float) -> list[str | None]:
        return [
            None if self.key not in s else self.strong if s[self.key] > value else self.weak
            for s in logged_scores
        ]

    def solve_share(
        self, logged_scores: Sequence[Scores], strong_tier: str, target_share: float
    ) -> float | None:
        """The midpoint between the logged scores ranked just below and just above the
        top round(target x n); None unless `strong_tier` is this rule's strong tier."""
        values = np.sort([float(s[self.key]) for s in logged_scores if self.key in s])
        if strong_tier != self.strong or values.size == 0:
            return None
        above = round(target_share * values.size)
        if above == 0:
            return float(values[-1])
        if above == values.size:
            return float(np.nextafter(values[0], -np.inf))
        cut = values.size - above
        return float((values[cut - 1] + values[cut]) / 2)


@dataclass(frozen=True, slots=True)
class EmbeddingMargin:
    """The embedding router's `margin`. `order` is the route's targets, cheapest first
    (tiers without examples are simply absent from the scores); `abstain_below` and
    `on_unsure` as configured on the router."""

    value: float
    order: tuple[str, ...]
    abstain_below: float | None = None
    on_unsure: str | None = None

    @property
    def name(self) -> str:
        return "margin"

    def replay(self, logged_scores: Sequence[Scores], value: float) -> list[str | None]:
        unsure = self.on_unsure if self.on_unsure in self.order else self.order[-1]
        routed: list[str | None] = []
        for scores in logged_scores:
            tiers = [t for t in self.order if t in scores]
            if not tiers:
                routed.append(None)
                continue
            routed.append(choose_tier(scores, tiers, value, self.abstain_below, unsure)[0])
        return routed


@dataclass(frozen=True, slots=True)
class LearnedCostWeight:
    """The learned router's `cost_weight`. `models` maps model to tier as configured on
    the router; `relative_costs` maps every model of the trained router, in its order, to
    its relative cost (`from_router` builds both)."""

    value: float
    models: Mapping[str, str]
    relative_costs: Mapping[str, float]

    @classmethod
    def from_router(
        cls, router: TrainedRouter, models: Mapping[str, str], cost_weight: float | None = None
    ) -> LearnedCostWeight:
        """From the trained router; `cost_weight` None means the router's default."""
        relative = dict(zip(router.models, router.relative_costs.tolist(), strict=True))
        weight = router.cost_weight if cost_weight is None else cost_weight
        return cls(weight, dict(models), relative)

    @property
    def name(self) -> str:
        return "cost_weight"

    def replay(self, logged_scores: Sequence[Scores], value: float) -> list[str | None]:
        names = list(self.relative_costs)
        relative = np.array([self.relative_costs[m] for m in names], dtype=np.float64)
        mapped = np.array([m in self.models for m in names], dtype=bool)
        p = np.array(
            [[s.get(f"p:{m}", np.nan) for m in names] for s in logged_scores], dtype=np.float64
        ).reshape(len(logged_scores), len(names))
        allowed = ~np.isnan(p) & mapped
        routed: list[str | None] = [None] * len(logged_scores)
        if not routed:
            return routed
        patterns, group = np.unique(allowed, axis=0, return_inverse=True)
        for k, pattern in enumerate(patterns):
            rows = np.flatnonzero(group.ravel() == k)
            if not pattern.any():
                continue
            picked = choose_model(np.nan_to_num(p[rows]), relative, value, pattern)
            for row, best in zip(rows.tolist(), picked.tolist(), strict=True):
                routed[row] = self.models[names[best]]
        return routed


@dataclass(frozen=True, slots=True)
class Recalibration:
    """The old and new value of a parameter and the replayed share of the tier at each."""

    parameter: str
    old_value: float
    new_value: float
    share_before: float
    share_after: float
    target_share: float
    reachable: bool
    evidence: dict[str, Any]


def replayed_share(
    tunable: Tunable, logged_scores: Sequence[Scores], strong_tier: str, value: float
) -> float:
    """Share of the replayable requests that go to `strong_tier` at `value` (0 if none)."""
    routed = [t for t in tunable.replay(logged_scores, value) if t is not None]
    return sum(t == strong_tier for t in routed) / len(routed) if routed else 0.0


def recalibrate_share(
    tunable: Tunable,
    logged_scores: Sequence[Scores],
    strong_tier: str,
    target_share: float,
    bounds: tuple[float, float],
    *,
    min_requests: int = 200,
    window: str | None = None,
) -> Recalibration:
    """The value within `bounds` whose replayed share of `strong_tier` is closest to
    `target_share`. `window` describes where the logs come from (e.g. an ISO-8601
    interval) for the evidence. Requests the tunable cannot replay are left out and
    counted in the evidence as `n_skipped`."""
    used = _replayable(tunable, logged_scores, target_share, bounds, min_requests)
    new, method, reachable = _solve(tunable, used, strong_tier, target_share, bounds)
    before = replayed_share(tunable, used, strong_tier, tunable.value)
    after = replayed_share(tunable, used, strong_tier, new)
    evidence: dict[str, Any] = {
        "parameter": tunable.name,
        "strong_tier": strong_tier,
        "old_value": tunable.value,
        "new_value": new,
        "share_before": before,
        "share_after": after,
        "target_share": target_share,
        "reachable": reachable,
        "bounds": list(bounds),
        "method": method,
        "n": len(used),
        "n_skipped": len(logged_scores) - len(used),
        "window": window,
    }
    return Recalibration(
        tunable.name, tunable.value, new, before, after, target_share, reachable, evidence
    )


def _solve(
    tunable: Tunable,
    used: Sequence[Scores],
    strong_tier: str,
    target_share: float,
    bounds: tuple[float, float],
) -> tuple[float, str, bool]:
    """(new value, method, reachable) for replayable scores."""

    def share(value: float) -> float:
        return replayed_share(tunable, used, strong_tier, value)

    low, high = bounds
    at_low, at_high = share(low), share(high)
    reachable = min(at_low, at_high) <= target_share <= max(at_low, at_high)
    solved = (
        tunable.solve_share(used, strong_tier, target_share)
        if isinstance(tunable, SolvesShare)
        else None
    )
    if solved is not None:
        return float(min(max(solved, low), high)), "quantile", reachable
    ends = (low, at_low), (high, at_high)
    return _bisect(share, *ends, target_share, 1 / len(used)), "bisection", reachable


def _replayable(
    tunable: Tunable,
    logged_scores: Sequence[Scores],
    target_share: float,
    bounds: tuple[float, float],
    min_requests: int,
) -> list[Scores]:
    """The logged scores the tunable can replay, after checking the arguments."""
    if not 0.0 <= target_share <= 1.0:
        raise ValueError(f"target share must be within [0, 1], not {target_share}")
    if not bounds[0] < bounds[1]:
        raise ValueError(f"bounds must be (low, high) with low < high, not {bounds}")
    routed = tunable.replay(logged_scores, tunable.value)
    used = [s for s, t in zip(logged_scores, routed, strict=True) if t is not None]
    if len(used) < min_requests:
        raise ValueError(
            f"cannot recalibrate {tunable.name}: {len(used)} replayable requests "
            f"(of {len(logged_scores)} logged), fewer than min_requests {min_requests}"
        )
    return used


def _bisect(
    share: Callable[[float], float],
    low: tuple[float, float],
    high: tuple[float, float],
    target: float,
    step: float,
    iterations: int = 60,
) -> float:
    """The value closest to `target` share between `low` and `high`, given as (value,
    share) pairs, assuming the share is monotone in the value; stops once the two shares
    are one `step` (one request) apart."""
    rising = high[1] >= low[1]

    def below(s: float) -> bool:
        return s < target if rising else s > target

    if not below(low[1]):
        return low[0]
    if below(high[1]):
        return high[0]
    for _ in range(iterations):
        middle = (low[0] + high[0]) / 2
        if abs(high[1] - low[1]) <= step * (1 + 1e-9) or middle in (low[0], high[0]):
            break
        probe = (middle, share(middle))
        low, high = (probe, high) if below(probe[1]) else (low, probe)
    return low[0] if abs(low[1] - target) < abs(high[1] - target) else high[0]
