"""Re-tune a router's threshold-like parameter from logged decisions.

A router's `ReplayRule` (`tierwise.routing.tuning`) replays its decision rule on the
scores it logged (`Decision.scores`) for any value of its parameter, without the model or
the embedder. `recalibrate_share` finds the value whose replayed share of a tier is
closest to a target: exactly when the rule can solve for it (a preference threshold: the
midpoint of the two logged scores around the (1 - target) quantile), else by bisection,
which assumes the share moves one way as the parameter grows (true of the strongest
tier's share for the embedding router's margin and for the priciest model's tier under
the learned router's cost_weight).

Guard rails: fewer replayable requests than `min_requests`, a target outside [0, 1] or
empty bounds raise ValueError. A target the bounds cannot reach is not an error: the
result holds the bound whose share comes closest, with `reachable` False.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tierwise.routing.tuning import ReplayRule, Scores


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
    rule: ReplayRule, logged_scores: Sequence[Scores], strong_tier: str, value: float
) -> float:
    """Share of the replayable requests that go to `strong_tier` at `value` (0 if none)."""
    routed = [t for t in rule.replay(logged_scores, value) if t is not None]
    return sum(t == strong_tier for t in routed) / len(routed) if routed else 0.0


def recalibrate_share(
    rule: ReplayRule,
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
    interval) for the evidence. Requests the rule cannot replay are left out and
    counted in the evidence as `n_skipped`."""
    used = _replayable(rule, logged_scores, target_share, bounds, min_requests)
    new, method, reachable = _solve(rule, used, strong_tier, target_share, bounds)
    before = replayed_share(rule, used, strong_tier, rule.value)
    after = replayed_share(rule, used, strong_tier, new)
    evidence: dict[str, Any] = {
        "parameter": rule.name,
        "strong_tier": strong_tier,
        "old_value": rule.value,
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
        rule.name, rule.value, new, before, after, target_share, reachable, evidence
    )


def _solve(
    rule: ReplayRule,
    used: Sequence[Scores],
    strong_tier: str,
    target_share: float,
    bounds: tuple[float, float],
) -> tuple[float, str, bool]:
    """(new value, method, reachable) for replayable scores."""

    def share(value: float) -> float:
        return replayed_share(rule, used, strong_tier, value)

    low, high = bounds
    at_low, at_high = share(low), share(high)
    reachable = min(at_low, at_high) <= target_share <= max(at_low, at_high)
    solved = rule.solve_share(used, strong_tier, target_share)
    if solved is not None:
        return float(min(max(solved, low), high)), "quantile", reachable
    ends = (low, at_low), (high, at_high)
    return _bisect(share, *ends, target_share, 1 / len(used)), "bisection", reachable


def _replayable(
    rule: ReplayRule,
    logged_scores: Sequence[Scores],
    target_share: float,
    bounds: tuple[float, float],
    min_requests: int,
) -> list[Scores]:
    """The logged scores the rule can replay, after checking the arguments."""
    if not 0.0 <= target_share <= 1.0:
        raise ValueError(f"target share must be within [0, 1], not {target_share}")
    if not bounds[0] < bounds[1]:
        raise ValueError(f"bounds must be (low, high) with low < high, not {bounds}")
    routed = rule.replay(logged_scores, rule.value)
    used = [s for s, t in zip(logged_scores, routed, strict=True) if t is not None]
    if len(used) < min_requests:
        raise ValueError(
            f"cannot recalibrate {rule.name}: {len(used)} replayable requests "
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
