"""A per-deployment circuit breaker: closed -> open -> half-open -> closed.

Pure: every method takes the current time; nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tierwise.config import BreakerConfig, Cooldown


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class Breaker:
    config: BreakerConfig
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    trips: int = 0
    open_until: float = 0.0
    probe_started: float | None = None

    def allow(self, now: float) -> bool:
        """Whether a call may go out now; claims the single half-open probe."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if now < self.open_until:
                return False
            self.state = BreakerState.HALF_OPEN
            self.probe_started = None
        probe_stale = self.probe_started is not None and (
            now - self.probe_started > max(self.config.cooldown_s, 1.0)
        )
        if self.probe_started is None or probe_stale:
            self.probe_started = now
            return True
        return False

    def reopens_at(self, now: float) -> float:
        """When a call may next go out (`now` when it may go out already)."""
        if self.state is BreakerState.OPEN:
            return max(now, self.open_until)
        if self.state is BreakerState.HALF_OPEN and self.probe_started is not None:
            return max(now, self.probe_started + max(self.config.cooldown_s, 1.0))
        return now

    def record_neutral(self) -> None:
        """A failure that is the request's own (e.g. a bad request) shows the
        deployment answering: it ends a half-open probe as a success and resets
        the count of consecutive failures, but does not cut an open period short."""
        if self.state is BreakerState.HALF_OPEN:
            self.record_success()
        elif self.state is BreakerState.CLOSED:
            self.failures = 0

    def record_success(self) -> None:
        self.state, self.failures, self.trips = BreakerState.CLOSED, 0, 0
        self.probe_started = None

    def record_failure(self, now: float, scope: Cooldown, cooldown_s: float | None = None) -> None:
        """Count a failure (COUNT) or open at once (IMMEDIATE); NONE leaves it alone."""
        if scope is Cooldown.NONE:
            return
        self.failures += 1
        tripped = (
            scope is Cooldown.IMMEDIATE
            or self.state is BreakerState.HALF_OPEN
            or self.failures >= self.config.failure_threshold
        )
        if tripped:
            self._open(now, cooldown_s)

    def _open(self, now: float, cooldown_s: float | None) -> None:
        backoff = self.config.cooldown_s * (2 ** min(self.trips, 16))
        duration = min(backoff, self.config.max_cooldown_s)
        if cooldown_s is not None:
            duration = min(
                max(duration if self.trips else 0.0, cooldown_s), self.config.max_cooldown_s
            )
        self.state, self.open_until = BreakerState.OPEN, now + duration
        self.trips += 1
        self.failures = 0
        self.probe_started = None
