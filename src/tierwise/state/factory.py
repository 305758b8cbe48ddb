"""Build the shared state a gateway uses from its config: in-process or Redis."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from tierwise.config import GatewayConfig
from tierwise.state.base import HealthState
from tierwise.state.budget import Budget, BudgetLimit, MemoryBudget, Period
from tierwise.state.memory import MemoryHealthState
from tierwise.state.ratelimit import MemoryRateLimiter, RateLimit, RateLimiter

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from tierwise.state.redis import RedisOptions


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
    from tierwise.state.redis import RedisHealthState
    from tierwise.state.redis_budget import RedisBudget
    from tierwise.state.redis_ratelimit import RedisRateLimiter

    client, options = _redis_client(config)
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


def add_budget(config: GatewayConfig, state: SharedState) -> Budget:
    """An empty budget on `config`'s backend, set in `state` (and closed with it), for
    scopes added while serving (virtual keys)."""
    if config.state.backend == "memory":
        state.budget = MemoryBudget({})
        return state.budget
    from tierwise.state.redis_budget import RedisBudget

    client, options = _redis_client(config)
    budget = RedisBudget(client, {}, options)
    state.closers += [budget.aclose, client.aclose]
    state.budget = budget
    return budget


def add_limiter(config: GatewayConfig, state: SharedState) -> RateLimiter:
    """An empty rate limiter on `config`'s backend, set in `state` (and closed with it)."""
    if config.state.backend == "memory":
        state.limiter = MemoryRateLimiter({})
        return state.limiter
    from tierwise.state.redis_ratelimit import RedisRateLimiter

    client, options = _redis_client(config)
    limiter = RedisRateLimiter(client, {}, options)
    state.closers += [limiter.aclose, client.aclose]
    state.limiter = limiter
    return limiter


def _redis_client(config: GatewayConfig) -> tuple[Redis, RedisOptions]:
    from tierwise.state.redis import RedisOptions, redis_client

    options = RedisOptions(
        namespace=config.state.namespace, on_unavailable=config.state.on_unavailable
    )
    return redis_client(config.state.redis_url), options
