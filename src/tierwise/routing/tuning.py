"""Routers whose threshold-like parameter drift checks may re-tune, and the pure rules
that replay their decisions on logged scores under another value of it.

A router opts in by implementing `Tunable`: `tuning_rule(tiers)` describes its parameter
at the current value as a `ReplayRule`, and `retune(parameter, value)` sets it (False for
a parameter it does not have, e.g. an audit entry written for another router).
Importing this module needs no numpy: every replica applies audited values.
  PreferenceThreshold  strong iff score > threshold (the learned router's `threshold`)
  LearnedCostWeight    the learned router's `cost_weight`, replayed by `learning.models.choose`
  EmbeddingMargin      the embedding router's `margin` (in `embedding_rule`, beside the
                       rule it replays)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tierwise.learning.models import TrainedRouter

Scores = Mapping[str, float]


class ReplayRule(Protocol):
    """A router parameter and a pure replay of the router's decisions under it."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> float: ...

    def replay(self, logged_scores: Sequence[Scores], value: float) -> list[str | None]:
        """The tier each logged request would go to at `value`; None when its scores
        cannot be replayed (the router logged none, or not the ones this rule needs)."""
        ...

    def solve_share(
        self, logged_scores: Sequence[Scores], strong_tier: str, target_share: float
    ) -> float | None:
        """The value whose replayed share of `strong_tier` is `target_share`, when the
        rule can compute it directly; None to let the caller search for it."""
        ...


@runtime_checkable
class Tunable(Protocol):
    """A router with a threshold-like parameter that drift checks may re-tune."""

    def tuning_rule(self, tiers: Sequence[str]) -> ReplayRule | None:
        """The parameter at its current value for a route with `tiers` (cheapest first);
        None when the router has none to tune."""
        ...

    def retune(self, parameter: str, value: float) -> bool:
        """Set `parameter` to `value`; False (and no change) when the router has no
        parameter of that name."""
        ...


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
        import numpy as np

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
        import numpy as np

        from tierwise.learning.models import choose

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
            picked = choose(np.nan_to_num(p[rows]), relative, value, pattern)
            for row, best in zip(rows.tolist(), picked.tolist(), strict=True):
                routed[row] = self.models[names[best]]
        return routed

    def solve_share(
        self, logged_scores: Sequence[Scores], strong_tier: str, target_share: float
    ) -> float | None:
        return None
