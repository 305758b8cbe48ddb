"""Rate limits shared through Redis: one Lua script per call."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from tierwise.state.ratelimit import (
    MIN_WAIT_S,
    Admission,
    Counts,
    MemoryRateLimiter,
    RateLimit,
    limited,
    refusal,
    rolled,
)
from tierwise.state.redis import DOWN, RedisBacked, RedisGuard, RedisOptions, text

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


class RedisRateLimiter(RedisBacked):
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

    async def _forget_local(self) -> None:
        self.local = MemoryRateLimiter({}, window_s=self.window_s)
        self.local.limits = self.limits

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
            return Admission(False, max(self.guard.retry_in_s(), 0.05), unavailable=True)
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
