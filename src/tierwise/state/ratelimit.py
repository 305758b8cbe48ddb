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
from typing import Any, Protocol

from redis.asyncio import Redis

from tierwise.state.redis import DOWN, RedisGuard, RedisOptions, text

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


@dataclass(frozen=True, slots=True)
class Counts:
    """One scope's window index and (previous, current) window totals."""

    index: int = 0
    requests: Pair = (0, 0)
    tokens: Pair = (0, 0)


class RateLimiter(Protocol):
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


ROLL_LUA = """
local now, size = tonumber(ARGV[1]), tonumber(ARGV[2])
local function roll(key)
  local v = redis.call('HMGET', key, 'w', 'rp', 'rc', 'tp', 'tc')
  local index = math.floor(now / size)
  local frac = (now - index * size) / size
  local w = tonumber(v[1])
  local s = {tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0, tonumber(v[5]) or 0}
  if w == nil then return index, frac, {0, 0, 0, 0}, v end
  if w > index then return w, 0, s, v end
  if w == index then return index, frac, s, v end
  if w + 1 == index then return index, frac, {s[2], 0, s[4], 0}, v end
  return index, frac, {0, 0, 0, 0}, v
end
"""

ADMIT_LUA = (
    ROLL_LUA
    + """
local costs, ok, rolled, reply = {tonumber(ARGV[3]), tonumber(ARGV[4])}, 1, {}, {}
for i, key in ipairs(KEYS) do
  local index, frac, s, raw = roll(key)
  rolled[i] = {index, s}
  for k = 1, 2 do
    local limit = tonumber(ARGV[5 + 2 * (i - 1) + k])
    if limit and s[2 * k - 1] * (1 - frac) + s[2 * k] + costs[k] > limit then ok = 0 end
  end
  for j = 1, 5 do reply[#reply + 1] = raw[j] end
end
if ok == 1 then
  for i, key in ipairs(KEYS) do
    local index, s = rolled[i][1], rolled[i][2]
    redis.call('HSET', key, 'w', index, 'rp', s[1], 'rc', s[2] + costs[1],
      'tp', s[3], 'tc', s[4] + costs[2])
    redis.call('PEXPIRE', key, ARGV[5])
  end
end
table.insert(reply, 1, ok)
return reply
"""
)

RECORD_LUA = (
    ROLL_LUA
    + """
for _, key in ipairs(KEYS) do
  local index, _, s = roll(key)
  redis.call('HSET', key, 'w', index, 'rp', s[1], 'rc', s[2], 'tp', s[3],
    'tc', math.max(0, s[4] + tonumber(ARGV[3])))
  redis.call('PEXPIRE', key, ARGV[4])
end
return 1
"""
)


def counts_from(raw: Sequence[Any]) -> Counts | None:
    """Counts from a hash's `w rp rc tp tc` fields as stored (None when absent)."""
    if raw[0] is None:
        return None
    r = [int(float(text(v))) if v is not None else 0 for v in raw]
    return Counts(r[0], (r[1], r[2]), (r[3], r[4]))


class RedisRateLimiter:
    """Limits shared through Redis, one Lua script per call. While Redis is
    unreachable, `open` limits from in-process counts (each replica then allows
    the full rate alone) and `closed` refuses until the next probe of Redis."""

    def __init__(
        self,
        client: Redis,
        limits: Mapping[str, RateLimit],
        options: RedisOptions | None = None,
        *,
        window_s: float = 60.0,
    ) -> None:
        self.client = client
        self.options = options or RedisOptions()
        self.local = MemoryRateLimiter(limits, window_s=window_s)
        self.limits, self.window_s = self.local.limits, window_s
        self.guard = RedisGuard(client, "ratelimit", self.options, on_recover=self._forget_local)
        self._admit = client.register_script(ADMIT_LUA)
        self._record = client.register_script(RECORD_LUA)

    @property
    def redis_failures(self) -> int:
        return self.guard.failures

    @property
    def redis_available(self) -> bool:
        return self.guard.available

    async def _forget_local(self) -> None:
        self.local = MemoryRateLimiter(self.limits, window_s=self.window_s)

    def _ttl_ms(self) -> int:
        return math.ceil(self.window_s * 2000) + 1000

    async def admit(
        self, scope_keys: Sequence[str], *, requests: int = 1, tokens: int = 0, now: float
    ) -> Admission:
        scopes = limited(self.limits, scope_keys)
        if not scopes:
            return Admission(True)
        args: list[str | int] = [repr(now), repr(self.window_s), requests, tokens, self._ttl_ms()]
        for s in scopes:
            args += [str(self.limits[s].requests or ""), str(self.limits[s].tokens or "")]
        keys = [self.options.key("ratelimit", s) for s in scopes]
        reply = await self.guard.run(lambda: self._admit(keys, args))
        if reply is DOWN:
            if self.options.on_unavailable == "open":
                return self.local.admit_now(scope_keys, requests, tokens, now)
            return Admission(False, max(self.guard.retry_in_s(), 0.05))
        if int(reply[0]) == 1:
            return Admission(True)
        states = [
            (self.limits[s], *rolled(counts_from(reply[1 + 5 * i : 6 + 5 * i]), now, self.window_s))
            for i, s in enumerate(scopes)
        ]
        return refusal(states, requests, tokens, self.window_s) or Admission(False, MIN_WAIT_S)

    async def record_tokens(self, scope_keys: Sequence[str], tokens: int, *, now: float) -> None:
        scopes = limited(self.limits, scope_keys)
        if not scopes:
            return
        keys = [self.options.key("ratelimit", s) for s in scopes]
        args: list[str | int] = [repr(now), repr(self.window_s), tokens, self._ttl_ms()]
        result = await self.guard.run(lambda: self._record(keys, args))
        if result is DOWN and self.options.on_unavailable == "open":
            self.local.record_tokens_now(scope_keys, tokens, now)

    async def aclose(self) -> None:
        await self.guard.aclose()
