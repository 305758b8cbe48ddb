"""Routers built from routers: a chain that asks the next one when a router
is unsure or fails, and the cascade that always starts cheapest."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tierwise.errors import ConfigError, TierwiseError
from tierwise.record import Decision
from tierwise.routing.base import Router
from tierwise.routing.context import BuildContext
from tierwise.types import ChatRequest


@dataclass(frozen=True, slots=True)
class ChainRouter:
    """Asks each router in turn; the first confident decision wins. A router
    that raises is skipped. Every consulted router's cost is charged."""

    routers: Sequence[Router]
    name: str = "chain"

    @classmethod
    def from_options(
        cls, context: BuildContext, routers: object = None, name: str = "chain"
    ) -> ChainRouter:
        if not isinstance(routers, list) or not routers:
            raise ConfigError("a chain needs a non-empty list of routers", key="router.routers")
        built = [context.router(r, f"router.routers[{i}]") for i, r in enumerate(routers)]
        return cls(built, name=name)

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        started = time.perf_counter()
        cost, notes = Decimal(0), []
        last: Decision | None = None
        for router in self.routers:
            try:
                decision = await router.decide(request, targets)
            except (TierwiseError, ValueError, OSError) as exc:
                notes.append(f"{router.name} failed: {exc}")
                continue
            cost += decision.cost_usd
            last = decision
            if decision.confident:
                break
            notes.append(f"{decision.router} unsure ({decision.reason})")
        if last is None:
            raise ConfigError("every router of the chain failed: " + "; ".join(notes))
        reason = "; ".join([*notes, f"{last.router}: {last.reason}"])
        elapsed_ms = (time.perf_counter() - started) * 1000
        return Decision(
            last.target,
            last.scores,
            reason[:500],
            f"{self.name}>{last.router}",
            cost,
            elapsed_ms,
            confident=last.confident,
        )


@dataclass(frozen=True, slots=True)
class CascadeRouter:
    """Always the cheapest tier; the route's checks and confidence signal
    escalate answers that are not good enough."""

    name: str = "cascade"

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        return Decision(
            targets[0],
            {t: float(t == targets[0]) for t in targets},
            "cascade: cheapest first, escalate on checks or low confidence",
            self.name,
        )
