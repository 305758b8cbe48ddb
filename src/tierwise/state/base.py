"""The health-state interface the executor consults before and after each call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tierwise.config import Cooldown


@dataclass(slots=True, frozen=True)
class DeploymentHealth:
    state: str
    latency_ms: float | None
    in_flight: int
    reopens_at: float


class HealthState(Protocol):
    async def acquire(self, deployment: str, now: float) -> bool:
        """Whether a call may go out now; when True, the call counts as in flight."""
        ...

    async def release(
        self,
        deployment: str,
        now: float,
        *,
        ok: bool,
        latency_ms: float | None,
        cooldown: Cooldown = Cooldown.NONE,
        cooldown_s: float | None = None,
    ) -> None:
        """End an acquired call. A success closes the breaker; a failure that does
        not cool the deployment down (`Cooldown.NONE`) only ends a half-open probe
        as a success; other failures apply `cooldown`."""
        ...

    async def health(self, deployment: str, now: float) -> DeploymentHealth: ...
