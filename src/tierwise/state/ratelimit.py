"""Request and token rate limits per scope (`key:team-a`, `model:gpt-4o`), in
process or shared through Redis.

A sliding window counter: each scope keeps the totals of the current and the
previous fixed window, and the previous one counts in proportion to how much of
it still lies within one window of `now`. A call is admitted only if every
scope has room for both its request and its tokens; then all are counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Pair = tuple[int, int]
MIN_WAIT_S = 0.001


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Most requests and tokens per window; None leaves that measure unlimited."""

    requests: int | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    retry_after_s: float | None = 0.0
    """0 when allowed; when refused, the wait until the same call would fit (None:
    it never will, being larger than a limit)."""
    unavailable: bool = False
    """Refused because the limits' shared store is unreachable (fail-closed)."""


@dataclass(frozen=True, slots=True)
class Counts:
    """One scope's window index and (previous, current) window totals."""

    index: int = 0
    requests: Pair = (0, 0)
    tokens: Pair = (0, 0)


class RateLimiter(Protocol):
    limits: dict[str, RateLimit]
    """The limit of each scope; changing it changes what `admit` checks."""

    async def admit(
        self, scope_keys: Sequence[str], *, requests: int = 1, tokens: int = 0, now: float
    ) -> Admission: ...

    async def record_tokens(self, scope_keys: Sequence[str], tokens: int, *, now: float) -> None:
        """Correct the current window's token count by `tokens` (may be negative),
        e.g. by the real usage minus the estimate that was admitted."""
        ...


def rolled(counts: Counts | None, now: float, window_s: float) -> tuple[Counts, float]:
    """The counts as of `now`'s window and how far into it `now` is (0..1). A `now`
    behind the stored window (clock skew between replicas) counts as its start."""
    index = math.floor(now / window_s)
    frac = (now - index * window_s) / window_s
    if counts is None:
        return Counts(index), frac
    if counts.index > index:
        return counts, 0.0
    if counts.index == index:
        return counts, frac
    if counts.index + 1 == index:
        return Counts(index, (counts.requests[1], 0), (counts.tokens[1], 0)), frac
    return Counts(index), frac


def fits(pair: Pair, cost: int, limit: int, frac: float) -> bool:
    return pair[0] * (1 - frac) + pair[1] + cost <= limit


def wait_s(pair: Pair, cost: int, limit: int, frac: float, window_s: float) -> float | None:
    """Seconds until `cost` more fits, with no other traffic; None if it never can."""
    if cost > limit:
        return None
    if fits(pair, cost, limit, frac):
        return 0.0
    previous, current = pair
    room = limit - current - cost
    if room >= 0:
        return max(0.0, (1 - room / previous - frac) * window_s)
    return ((1 - frac) + (1 - (limit - cost) / current)) * window_s


def checks(
    limit: RateLimit, counts: Counts, requests: int, tokens: int
) -> list[tuple[Pair, int, int]]:
    measured = [(limit.requests, counts.requests, requests), (limit.tokens, counts.tokens, tokens)]
    return [(pair, cost, cap) for cap, pair, cost in measured if cap is not None]


def refusal(
    states: Sequence[tuple[RateLimit, Counts, float]], requests: int, tokens: int, window_s: float
) -> Admission | None:
    """None when every scope has room; otherwise the refusal with the longest wait."""
    short = [
        (pair, cost, cap, frac)
        for limit, counts, frac in states
        for pair, cost, cap in checks(limit, counts, requests, tokens)
        if not fits(pair, cost, cap, frac)
    ]
    if not short:
        return None
    waits = [wait_s(pair, cost, cap, frac, window_s) for pair, cost, cap, frac in short]
    if any(w is None for w in waits):
        return Admission(False, None)
    return Admission(False, max(MIN_WAIT_S, *(w for w in waits if w is not None)))


def limited(limits: Mapping[str, RateLimit], scope_keys: Sequence[str]) -> list[str]:
    return [s for s in dict.fromkeys(scope_keys) if s in limits]


class MemoryRateLimiter:
    """In-process limits; each method runs without awaiting, so it is atomic among
    the tasks of one event loop."""

    def __init__(self, limits: Mapping[str, RateLimit], *, window_s: float = 60.0) -> None:
        self.limits = dict(limits)
        self.window_s = window_s
        self._counts: dict[str, Counts] = {}

    def admit_now(
        self, scope_keys: Sequence[str], requests: int, tokens: int, now: float
    ) -> Admission:
        scopes = limited(self.limits, scope_keys)
        states = [
            (self.limits[s], *rolled(self._counts.get(s), now, self.window_s)) for s in scopes
        ]
        refused = refusal(states, requests, tokens, self.window_s)
        if refused is not None:
            return refused
        for scope, (_, counts, _) in zip(scopes, states, strict=True):
            r, t = counts.requests, counts.tokens
            self._counts[scope] = Counts(
                counts.index, (r[0], r[1] + requests), (t[0], t[1] + tokens)
            )
        return Admission(True)

    def record_tokens_now(self, scope_keys: Sequence[str], tokens: int, now: float) -> None:
        for scope in limited(self.limits, scope_keys):
            counts, _ = rolled(self._counts.get(scope), now, self.window_s)
            previous, current = counts.tokens
            tokens_now = (previous, max(0, current + tokens))
            self._counts[scope] = Counts(counts.index, counts.requests, tokens_now)

    async def admit(
        self, scope_keys: Sequence[str], *, requests: int = 1, tokens: int = 0, now: float
    ) -> Admission:
        return self.admit_now(scope_keys, requests, tokens, now)

    async def record_tokens(self, scope_keys: Sequence[str], tokens: int, *, now: float) -> None:
        self.record_tokens_now(scope_keys, tokens, now)
