"""Build the shared state a gateway uses from its config: in-process or Redis."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from tierwise.config import GatewayConfig
from tierwise.state.base import HealthState
from tierwise.state.budget import Budget, BudgetLimit, MemoryBudget, Period
from tierwise.state.memory import MemoryHealthState
from tierwise.state.ratelimit import MemoryRateLimiter, RateLimit, RateLimiter


class WallClock:
    """Epoch seconds: the only time that means the same in every replica."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


@dataclass(slots=True)
class SharedState:
    health: HealthState
    budget: Budget | None = None
    limiter: RateLimiter | None = None
    clock: WallClock | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


def build_state(config: GatewayConfig) -> SharedState:
    limits = {
        scope: BudgetLimit(Decimal(b.limit_usd), Period(b.period))
        for scope, b in config.budgets.items()
    }
    rates = {scope: RateLimit(r.requests, r.tokens) for scope, r in config.rate_limits.items()}
    if config.state.backend == "memory":
        return SharedState(
            MemoryHealthState(config.fallback.breaker),
            MemoryBudget(limits) if limits else None,
            MemoryRateLimiter(rates) if rates else None,
        )
    return _redis_state(config, limits, rates)


def _redis_state(
    config: GatewayConfig, limits: dict[str, BudgetLimit], rates: dict[str, RateLimit]
) -> SharedState:
    from tierwise.state.redis import RedisHealthState, RedisOptions, redis_client
    from tierwise.state.redis_budget import RedisBudget
    from tierwise.state.redis_ratelimit import RedisRateLimiter

    client = redis_client(config.state.redis_url)
    options = RedisOptions(
        namespace=config.state.namespace, on_unavailable=config.state.on_unavailable
    )
    health = RedisHealthState(client, config.fallback.breaker, options)
    budget = RedisBudget(client, limits, options) if limits else None
    limiter = RedisRateLimiter(client, rates, options) if rates else None
    closers: list[Callable[[], Awaitable[None]]] = [health.aclose]
    if budget is not None:
        closers.append(budget.aclose)
    if limiter is not None:
        closers.append(limiter.aclose)
    closers.append(client.aclose)
    return SharedState(health, budget, limiter, WallClock(), closers)
