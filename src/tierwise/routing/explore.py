"""Exploration with known propensities: a router wrapper that sends a share of a
route's requests to a tier drawn uniformly at random, and the daily budget that
stops exploring once its spend reaches a cap.

Every decision carries its propensity, the probability that its target was chosen
for this request: with share `s` over `n` tiers and a wrapped router that picks
`t` with probability `q`, a tier `c` is chosen with `s/n + (1 - s) q [c = t]`.
With exploration off (or its budget spent) that is the wrapped router's own
propensity, 1.0 for a deterministic router.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from tierwise.record import ZERO, Decision
from tierwise.routing.base import Router
from tierwise.state.budget import Budget, BudgetLimit, Period
from tierwise.types import ChatRequest

SHADOW_ROUTER = "explore:shadow"
GRADE_ROUTER = "explore:grade"
SIDE_ROUTERS = frozenset({SHADOW_ROUTER, GRADE_ROUTER})
"""The routers of calls exploration makes beside a route's requests (a shadow call,
a judge grading a served answer): logged on the route, never its decisions."""
COUNTER_LIMIT = BudgetLimit(Decimal(10) ** 9, Period.DAY)
"""Exploration keeps its spend in day buckets of a `Budget` used as a counter; the
caps are decided here, so the counters' own limit is never reached."""


def scopes(route: str) -> tuple[str, str]:
    """The budget scopes of a route's exploration spend and of its whole spend."""
    return f"explore:{route}", f"explore-route:{route}"


def propensity(share: float, targets: list[str], picked: Decision, chosen: str) -> float:
    """The probability of choosing `chosen` among `targets`: uniformly with
    probability `share`, else as the wrapped router's decision `picked` did."""
    uniform = share / len(targets) if chosen in targets else 0.0
    routed = picked.propensity if chosen == picked.target else 0.0
    return uniform + (1.0 - share) * routed


def shadow_propensity(share: float, tiers: list[str], served: str) -> float:
    """The probability that one other tier gets the shadow call of a request."""
    others = [t for t in tiers if t != served]
    return share / len(others) if others else 0.0


def pick_shadow(rng: random.Random, tiers: list[str], served: str) -> str | None:
    """A tier other than the one that served, uniformly; None when there is none."""
    others = [t for t in tiers if t != served]
    return rng.choice(others) if others else None


def within_caps(
    spent: Decimal,
    route_spent: Decimal,
    limit_usd: Decimal | None,
    max_share: Decimal,
    headroom: Decimal = ZERO,
) -> bool:
    """Whether one more request may explore: exploration's spend today plus
    `headroom` (what one explored request may cost) stays within the day's limit,
    and within `max_share` of the route's spend today counting that request too. A
    share below 1 waits for the day's first request of the route."""
    after = spent + headroom
    if limit_usd is not None and (spent >= limit_usd or after > limit_usd):
        return False
    if max_share < 1 and route_spent == 0:
        return False
    return after <= (route_spent + headroom) * max_share


class ExplorationBudget:
    """Today's (UTC) exploration spend and the route's spend. Without `shared` they
    are counted in this process (the `memory` state backend); with it, also in that
    `Budget` (Redis, like the gateway's budgets) under the route's `scopes`, re-read
    at most every `refresh_s` (charges made here count at once), so a replica learns
    the others' spend within that time."""

    def __init__(
        self,
        route: str,
        *,
        limit_usd: Decimal | None,
        max_share: float,
        shared: Budget | None = None,
        refresh_s: float = 1.0,
    ) -> None:
        self.route, self.shared, self.refresh_s = route, shared, refresh_s
        self.limit_usd, self.max_share = limit_usd, Decimal(str(max_share))
        self.scope, self.route_scope = scopes(route)
        self._read_at = -math.inf
        self._day = -1
        self.spent, self.route_spent = ZERO, ZERO
        self.largest = ZERO
        """The most one request of the route has cost here: the room kept below each
        cap for the next explored request."""

    async def allowed(self, now: float, estimate: Decimal = ZERO, *, known: bool = False) -> bool:
        """Whether a request may explore now (see `within_caps`), keeping room for
        the dearest request seen or for `estimate`, what this one should cost; with
        `known`, for `estimate` alone (a call whose cost is known in advance, such as
        a judge's)."""
        await self._refresh(now)
        room = estimate if known else max(self.largest, estimate)
        return within_caps(self.spent, self.route_spent, self.limit_usd, self.max_share, room)

    def count(self, route_usd: Decimal, exploration_usd: Decimal, now: float) -> None:
        """Count one finished request here (and only here: see `charge`)."""
        self._roll(now)
        self.route_spent += route_usd
        self.spent += exploration_usd
        self.largest = max(self.largest, route_usd)

    async def charge(self, route_usd: Decimal, exploration_usd: Decimal, now: float) -> None:
        """Count one finished request of the route and the part exploration caused,
        in the shared budget too when there is one."""
        await self._refresh(now)
        if self.shared is not None:
            for scope, amount in ((self.route_scope, route_usd), (self.scope, exploration_usd)):
                if amount > 0:
                    reservation = await self.shared.reserve([scope], amount, now)
                    if reservation is not None:
                        await self.shared.settle(reservation, amount, now)
        self.count(route_usd, exploration_usd, now)

    def _roll(self, now: float) -> None:
        """A new UTC day starts from zero (and a fresh read of the shared budget)."""
        day = int(now // 86_400)
        if day != self._day:
            self._day, self._read_at = day, -math.inf
            self.spent, self.route_spent = ZERO, ZERO

    async def _refresh(self, now: float) -> None:
        self._roll(now)
        if self.shared is None or now - self._read_at < self.refresh_s:
            return
        self.spent = (await self.shared.usage(self.scope, now)).spent_usd
        self.route_spent = (await self.shared.usage(self.route_scope, now)).spent_usd
        self._read_at = now


@dataclass(slots=True)
class ExploreRouter:
    """Wraps a router: with probability `share` (while `budget` allows) the start
    tier is drawn uniformly among the route's tiers, otherwise `inner` decides.
    The inner router is always asked, so each decision's propensity is exact."""

    inner: Router
    share: float
    rng: random.Random
    budget: ExplorationBudget | None = None
    now: Callable[[], float] = time.time

    @property
    def name(self) -> str:
        return self.inner.name

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        picked = await self.inner.decide(request, targets)
        share = self.share
        if share > 0 and self.budget is not None and not await self.budget.allowed(self.now()):
            share = 0.0
        explored = share > 0 and self.rng.random() < share
        chosen = self.rng.choice(targets) if explored else picked.target
        p = propensity(share, targets, picked, chosen)
        if not explored:
            return replace(picked, propensity=p)
        reason = f"explore: drawn uniformly among {len(targets)} tiers ({picked.reason})"
        return replace(
            picked,
            target=chosen,
            reason=reason[:500],
            router=f"explore>{picked.router}",
            propensity=p,
            explored=True,
        )
