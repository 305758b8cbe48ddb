"""The router interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tierwise.record import Decision
from tierwise.types import ChatRequest


class Router(Protocol):
    """Chooses where a request starts: a tier name (or a deployment name) among
    `targets`, cheapest first."""

    @property
    def name(self) -> str: ...

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision: ...


@runtime_checkable
class WarmUp(Protocol):
    """A router that loads something lazily (a model, example embeddings) and can do it
    ahead of the first request; the gateway calls it in a worker thread at start-up."""

    def warm_up(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FixedRouter:
    """Always the same target (default: the cheapest)."""

    target: str | None = None
    name: str = "fixed"

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        chosen = self.target if self.target in targets else targets[0]
        return Decision(chosen, {}, "fixed target", self.name)
