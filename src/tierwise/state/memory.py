"""In-process health state: one breaker, latency average and load count per deployment."""

from __future__ import annotations

from dataclasses import dataclass, field

from tierwise.config import BreakerConfig, Cooldown
from tierwise.resilience.breaker import Breaker
from tierwise.state.base import DeploymentHealth

LATENCY_SMOOTHING = 0.2


@dataclass(slots=True)
class _Slot:
    breaker: Breaker
    latency_ms: float | None = None
    in_flight: int = 0


@dataclass
class MemoryHealthState:
    config: BreakerConfig = field(default_factory=BreakerConfig)
    _slots: dict[str, _Slot] = field(default_factory=dict)

    def _slot(self, deployment: str) -> _Slot:
        slot = self._slots.get(deployment)
        if slot is None:
            slot = self._slots[deployment] = _Slot(Breaker(self.config))
        return slot

    async def acquire(self, deployment: str, now: float) -> bool:
        slot = self._slot(deployment)
        if not slot.breaker.allow(now):
            return False
        slot.in_flight += 1
        return True

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
        slot = self._slot(deployment)
        slot.in_flight = max(0, slot.in_flight - 1)
        if ok:
            slot.breaker.record_success()
        elif cooldown is Cooldown.NONE:
            slot.breaker.record_neutral()
        else:
            slot.breaker.record_failure(now, cooldown, cooldown_s)
        if ok and latency_ms is not None:
            previous = slot.latency_ms
            slot.latency_ms = (
                latency_ms
                if previous is None
                else (previous + LATENCY_SMOOTHING * (latency_ms - previous))
            )

    async def health(self, deployment: str, now: float) -> DeploymentHealth:
        slot = self._slot(deployment)
        breaker = slot.breaker
        return DeploymentHealth(
            breaker.state.value, slot.latency_ms, slot.in_flight, breaker.reopens_at(now)
        )
