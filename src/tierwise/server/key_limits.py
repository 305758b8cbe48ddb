"""Virtual keys' own budgets and rate limits, kept as `key:<name>` scopes in the
gateway's budget and rate limiter, so the same code paths enforce them as enforce
configured scopes. A scope set in config (`budgets`, `rate_limits`) wins."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from tierwise.gateway import Gateway
from tierwise.state.budget import BudgetLimit, Period
from tierwise.state.factory import add_budget, add_limiter
from tierwise.state.ratelimit import RateLimit
from tierwise.store.keys import VirtualKeyRow


def wanted_budgets(rows: Iterable[VirtualKeyRow]) -> dict[str, BudgetLimit]:
    return {
        f"key:{r['name']}": BudgetLimit(Decimal(r["budget_usd"]), Period(r["budget_period"]))
        for r in rows
        if r["budget_usd"] is not None and r["budget_period"] is not None
    }


def wanted_rates(rows: Iterable[VirtualKeyRow]) -> dict[str, RateLimit]:
    return {
        f"key:{r['name']}": RateLimit(r["rpm"], r["tpm"])
        for r in rows
        if r["rpm"] is not None or r["tpm"] is not None
    }


def sync(limits: dict[str, Any], wanted: Mapping[str, Any], mine: set[str]) -> set[str]:
    """Set `wanted` scopes in `limits`, drop scopes this object set before and no
    longer wants, leave every other scope alone; the scopes now set. (A Redis budget
    or limiter shares its `limits` with its in-process fallback.)"""
    for scope in mine - set(wanted):
        limits.pop(scope, None)
    limits.update(wanted)
    return set(wanted)


class KeyLimits:
    """Applies the live virtual keys' limits to the shared state of the gateway
    `current()` returns (the serving one, also after a config reload)."""

    def __init__(self, current: Callable[[], Gateway]) -> None:
        self.current = current
        self.budget_scopes: set[str] = set()
        self.rate_scopes: set[str] = set()

    @property
    def gateway(self) -> Gateway:
        return self.current()

    def apply(self, rows: list[VirtualKeyRow]) -> None:
        config = self.gateway.config
        budgets = {s: v for s, v in wanted_budgets(rows).items() if s not in config.budgets}
        rates = {s: v for s, v in wanted_rates(rows).items() if s not in config.rate_limits}
        state = self.gateway.state
        if budgets and state.budget is None:
            self.gateway.executor.budget = add_budget(self.gateway.config, state)
        if rates and state.limiter is None:
            add_limiter(self.gateway.config, state)
        if state.budget is not None:
            self.budget_scopes = sync(state.budget.limits, budgets, self.budget_scopes)
        if state.limiter is not None:
            self.rate_scopes = sync(state.limiter.limits, rates, self.rate_scopes)
