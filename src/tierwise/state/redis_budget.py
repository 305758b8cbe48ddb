"""Budgets shared through Redis: one Lua script per operation."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from redis.asyncio import Redis

from tierwise.state.budget import (
    Bucket,
    BudgetUsage,
    Finish,
    LimitSpec,
    MemoryBudget,
    Reservation,
    buckets_for,
    checked_units,
    to_units,
    to_usd,
)
from tierwise.state.redis import DOWN, RedisBacked, RedisGuard, RedisOptions, text

PURGE_LUA = """
-- amounts are negated as 0 - n: Lua's -0 reaches Redis as "-0", which HINCRBY refuses
local function purge(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, rid in ipairs(gone) do
    local units = redis.call('HGET', h, 'r:' .. rid)
    if units and units ~= 'x' then
      redis.call('HINCRBY', h, 'reserved', 0 - tonumber(units))
      redis.call('HSET', h, 'r:' .. rid, 'x')
    end
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
"""

RESERVE_LUA = (
    PURGE_LUA
    + """
local now, amount, id, expires = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local n = #KEYS / 2
for i = 1, n do
  local h = KEYS[2 * i - 1]
  purge(h, KEYS[2 * i], now)
  local v = redis.call('HMGET', h, 'spent', 'reserved')
  local room = tonumber(ARGV[3 + 2 * i]) - (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0)
  if room < amount then return i end
end
for i = 1, n do
  local h, z, ttl = KEYS[2 * i - 1], KEYS[2 * i], ARGV[4 + 2 * i]
  redis.call('HINCRBY', h, 'reserved', ARGV[2])
  redis.call('HSET', h, 'r:' .. id, ARGV[2])
  redis.call('ZADD', z, expires, id)
  redis.call('EXPIRE', h, ttl)
  redis.call('EXPIRE', z, ttl)
end
return 0
"""
)

FINISH_LUA = """
local id, mode, charge = ARGV[1], ARGV[2], ARGV[3]
local done = 0
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if mode == 'charge' then
    if redis.call('HSETNX', h, 'c:' .. id, 1) == 1 then
      redis.call('HINCRBY', h, 'spent', charge)
      redis.call('EXPIRE', h, ARGV[3 + i])
      done = 1
    end
  else
    local units = redis.call('HGET', h, 'r:' .. id)
    if units then
      if units ~= 'x' then
        redis.call('HINCRBY', h, 'reserved', 0 - tonumber(units))
        redis.call('ZREM', z, id)
      end
      redis.call('HDEL', h, 'r:' .. id)
      if mode == 'settle' then redis.call('HINCRBY', h, 'spent', charge) end
      done = 1
    end
  end
end
return done
"""

USAGE_LUA = (
    PURGE_LUA
    + """
purge(KEYS[1], KEYS[2], tonumber(ARGV[1]))
return redis.call('HMGET', KEYS[1], 'spent', 'reserved')
"""
)


@dataclass(frozen=True, slots=True)
class _Pending:
    reservation: Reservation
    mode: Finish
    charge: int
    now: float


class RedisBudget(RedisBacked):
    """Budgets shared through Redis, one Lua script per operation. While Redis is
    unreachable, `open` reserves from an in-process `MemoryBudget` (each replica
    then enforces the full limits alone) and `closed` refuses every reservation.
    Settles and releases that cannot reach Redis are queued and sent once it
    answers again, as is the real cost of reservations made locally."""

    def __init__(
        self,
        client: Redis,
        limits: Mapping[str, LimitSpec],
        options: RedisOptions | None = None,
        *,
        reservation_ttl_s: float = 300.0,
        max_pending: int = 100_000,
    ) -> None:
        self.client = client
        self.options = options or RedisOptions()
        self.local = MemoryBudget(limits, reservation_ttl_s=reservation_ttl_s)
        self.limits = self.local.limits
        self.reservation_ttl_s = reservation_ttl_s
        self._refused_down = False
        self.guard = RedisGuard(client, "budget", self.options, on_recover=self.flush)
        self.pending: deque[_Pending] = deque(maxlen=max_pending)
        self._reserve = client.register_script(RESERVE_LUA)
        self._finish = client.register_script(FINISH_LUA)
        self._usage = client.register_script(USAGE_LUA)

    def unavailable(self) -> bool:
        return self._refused_down

    def retry_in_s(self) -> float:
        return self.guard.retry_in_s()

    def keys(self, buckets: Sequence[Bucket]) -> list[str]:
        base = [self.options.key("budget", b.tag) for b in buckets]
        return [k for key in base for k in (key, key + ":exp")]

    async def reserve(
        self, scope_keys: Sequence[str], amount_usd: Decimal, now: float
    ) -> Reservation | None:
        units = checked_units(amount_usd)
        buckets = buckets_for(self.limits, scope_keys, now)
        rid, expires_at = uuid.uuid4().hex, now + self.reservation_ttl_s
        if not buckets:
            return Reservation(rid, amount_usd, buckets, expires_at)
        args: list[str | int] = [repr(now), units, rid, repr(expires_at)]
        for b in buckets:
            args += [to_units(self.limits[b.scope].limit_usd, ROUND_FLOOR)]
            args += [b.ttl_s(now, self.reservation_ttl_s)]
        keys = self.keys(buckets)
        result = await self.guard.run(lambda: self._reserve(keys, args))
        self._refused_down = result is DOWN and self.options.on_unavailable == "closed"
        if result is DOWN:
            if self._refused_down:
                return None
            return self.local.reserve_now(scope_keys, amount_usd, now, local=True)
        if int(result) != 0:
            return None
        return Reservation(rid, amount_usd, buckets, expires_at)

    async def settle(self, reservation: Reservation, actual_usd: Decimal, now: float) -> bool:
        charge = checked_units(actual_usd)
        if not reservation.local:
            return await self._send(_Pending(reservation, "settle", charge, now))
        if not self.local.finish_now(reservation, charge):
            return False
        await self._send(_Pending(reservation, "charge", charge, now))
        return True

    async def release(self, reservation: Reservation) -> bool:
        if reservation.local:
            return self.local.finish_now(reservation, None)
        return await self._send(_Pending(reservation, "release", 0, reservation.expires_at))

    async def _send(self, item: _Pending) -> bool:
        """Run a settle, release or charge; queue it when Redis does not answer."""
        r = item.reservation
        if not r.buckets:
            return False
        args: list[str | int] = [r.id, item.mode, item.charge]
        args += [b.ttl_s(item.now, self.reservation_ttl_s) for b in r.buckets]
        result = await self.guard.run(lambda: self._finish(self.keys(r.buckets), args))
        if result is DOWN:
            self.pending.append(item)
            return True
        return int(result) == 1

    async def flush(self) -> None:
        """Send what was queued while Redis was unreachable, until it fails again."""
        for _ in range(len(self.pending)):
            if not self.guard.available:
                return
            await self._send(self.pending.popleft())

    async def usage(self, scope: str, now: float) -> BudgetUsage:
        limit = self.limits.get(scope)
        if limit is None:
            return self.local.usage_now(scope, now)
        bucket = buckets_for(self.limits, [scope], now)[0]
        raw = await self.guard.run(lambda: self._usage(self.keys([bucket]), [repr(now)]))
        if raw is DOWN:
            return self.local.usage_now(scope, now)
        spent, reserved = (int(text(v)) if v is not None else 0 for v in raw)
        return BudgetUsage(scope, limit, bucket.start, bucket.end, to_usd(spent), to_usd(reserved))

    async def aclose(self) -> None:
        await self.guard.aclose()
