"""Exact cost accounting: attempts, checks, router tax, exploration, baseline and
savings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from tierwise.pricing import Price
from tierwise.record import ZERO, AttemptRecord, CostBreakdown, Decision, RequestRecord
from tierwise.types import Usage


def bill(
    attempts: list[AttemptRecord],
    decision: Decision | None,
    baseline: Price | None,
    final_usage: Usage | None,
) -> CostBreakdown:
    """The bill of one request; the baseline is the same request's tokens on
    the baseline model, the counterfactual of always using it."""
    attempts_usd = sum((a.cost_usd for a in attempts), ZERO)
    checks_usd = sum((a.check_cost_usd for a in attempts), ZERO)
    router_usd = decision.cost_usd if decision else ZERO
    baseline_usd = ZERO
    if baseline is not None and final_usage is not None:
        baseline_usd = baseline.cost_usd(final_usage)
    explored = decision is not None and decision.explored
    exploration_usd = attempts_usd + checks_usd + router_usd if explored else ZERO
    return CostBreakdown(attempts_usd, checks_usd, router_usd, baseline_usd, exploration_usd)


@dataclass(slots=True, frozen=True)
class Totals:
    requests: int
    total_usd: Decimal
    router_usd: Decimal
    baseline_usd: Decimal
    exploration_usd: Decimal = ZERO

    @property
    def savings_usd(self) -> Decimal:
        return self.baseline_usd - self.total_usd

    @property
    def savings_share(self) -> Decimal:
        return self.savings_usd / self.baseline_usd if self.baseline_usd else ZERO


def totals(costs: Iterable[CostBreakdown]) -> Totals:
    """Sum bills exactly."""
    count, total, router, baseline, exploration = 0, ZERO, ZERO, ZERO, ZERO
    for cost in costs:
        count += 1
        total += cost.total_usd
        router += cost.router_usd
        baseline += cost.baseline_usd
        exploration += cost.exploration_usd
    return Totals(count, total, router, baseline, exploration)


def totals_of(records: Iterable[RequestRecord]) -> Totals:
    return totals(r.cost for r in records)
