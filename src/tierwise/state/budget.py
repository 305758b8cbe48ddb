"""Spend budgets by reservation: reserve the worst case before a call, settle the
real cost after it.

A reservation holds budget in every scope it names (`key:team-a`, `team:x`,
`model:gpt-4o`) for the scope's current calendar period (UTC, from `now`, which
must be epoch seconds). Unsettled reservations expire after a TTL, so a crashed
replica cannot hold budget forever; a settle that arrives after expiry still
charges the real cost, once. Amounts are kept as integer nano-dollars.
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Literal, Protocol

from redis.asyncio import Redis

from tierwise.state.redis import DOWN, RedisGuard, RedisOptions, text

UNITS_PER_USD = Decimal(10) ** 9
KEY_GRACE_S = 3600
Finish = Literal["settle", "release", "charge"]


class Period(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


_SECONDS = {Period.MINUTE: 60, Period.HOUR: 3600, Period.DAY: 86_400}


def period_bounds(period: Period, now: float) -> tuple[float, float]:
    """Start and end (epoch seconds) of the calendar period, in UTC, holding `now`."""
    if period is Period.MONTH:
        t = datetime.fromtimestamp(now, UTC)
        start = datetime(t.year, t.month, 1, tzinfo=UTC)
        end = datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=UTC)
        return start.timestamp(), end.timestamp()
    size = _SECONDS[period]
    first = math.floor(now / size) * size
    return float(first), float(first + size)


def to_units(usd: Decimal, rounding: str = ROUND_CEILING) -> int:
    return int((usd * UNITS_PER_USD).to_integral_value(rounding))


def to_usd(units: int) -> Decimal:
    return Decimal(units) / UNITS_PER_USD


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    limit_usd: Decimal
    period: Period


@dataclass(frozen=True, slots=True)
class Bucket:
    """One scope's account for one period."""

    scope: str
    period: Period
    start: float
    end: float

    @property
    def tag(self) -> str:
        return f"{self.scope}:{self.period.value}:{int(self.start)}"

    def ttl_s(self, now: float, reservation_ttl_s: float) -> int:
        return max(1, math.ceil(self.end - now + reservation_ttl_s + KEY_GRACE_S))


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    amount_usd: Decimal
    buckets: tuple[Bucket, ...]
    expires_at: float
    local: bool = False


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    scope: str
    limit: BudgetLimit | None
    start: float
    end: float
    spent_usd: Decimal
    reserved_usd: Decimal

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit is None:
            return None
        return self.limit.limit_usd - self.spent_usd - self.reserved_usd


class Budget(Protocol):
    async def reserve(
        self, scope_keys: Sequence[str], amount_usd: Decimal, now: float
    ) -> Reservation | None:
        """Hold `amount_usd` in every limited scope, or in none and return None."""
        ...

    async def settle(self, reservation: Reservation, actual_usd: Decimal, now: float) -> bool:
        """Replace the hold with the real cost. Only the first settle or release of a
        reservation counts; each returns whether it was that one."""
        ...

    async def release(self, reservation: Reservation) -> bool:
        """Cancel the hold; nothing is charged."""
        ...

    async def usage(self, scope: str, now: float) -> BudgetUsage: ...


LimitSpec = BudgetLimit | tuple[Decimal | str | int | float, Period | str]


def parse_limits(limits: Mapping[str, LimitSpec]) -> dict[str, BudgetLimit]:
    parsed = {}
    for scope, spec in limits.items():
        if isinstance(spec, BudgetLimit):
            parsed[scope] = spec
        else:
            amount, period = spec
            parsed[scope] = BudgetLimit(Decimal(str(amount)), Period(period))
    return parsed


def buckets_for(
    limits: Mapping[str, BudgetLimit], scope_keys: Sequence[str], now: float
) -> tuple[Bucket, ...]:
    """The current bucket of each distinct limited scope; unlimited scopes are skipped."""
    buckets = []
    for scope in dict.fromkeys(scope_keys):
        limit = limits.get(scope)
        if limit is not None:
            buckets.append(Bucket(scope, limit.period, *period_bounds(limit.period, now)))
    return tuple(buckets)


def checked_units(amount_usd: Decimal) -> int:
    if amount_usd < 0:
        raise ValueError(f"a negative amount: {amount_usd}")
    return to_units(amount_usd)


@dataclass(slots=True)
class _Account:
    spent: int = 0
    reserved: int = 0
    live: dict[str, int] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    expiries: list[tuple[float, str]] = field(default_factory=list)

    def purge(self, now: float) -> None:
        while self.expiries and self.expiries[0][0] <= now:
            _, rid = heapq.heappop(self.expiries)
            units = self.live.pop(rid, None)
            if units is not None:
                self.reserved -= units
                self.expired.add(rid)

    def finish(self, rid: str, charge: int | None) -> bool:
        units = self.live.pop(rid, None)
        if units is not None:
            self.reserved -= units
        elif rid in self.expired:
            self.expired.discard(rid)
        else:
            return False
        self.spent += charge or 0
        return True


class MemoryBudget:
    """In-process budgets. Every method runs without awaiting, so each is atomic
    among the tasks of one event loop."""

    def __init__(
        self, limits: Mapping[str, LimitSpec], *, reservation_ttl_s: float = 300.0
    ) -> None:
        self.limits = parse_limits(limits)
        self.reservation_ttl_s = reservation_ttl_s
        self._accounts: dict[Bucket, _Account] = {}

    def _account(self, bucket: Bucket, now: float) -> _Account:
        account = self._accounts.get(bucket)
        if account is None:
            horizon = now - self.reservation_ttl_s - KEY_GRACE_S
            for old in [b for b in self._accounts if b.end < horizon]:
                del self._accounts[old]
            account = self._accounts[bucket] = _Account()
        account.purge(now)
        return account

    def reserve_now(
        self, scope_keys: Sequence[str], amount_usd: Decimal, now: float, *, local: bool = False
    ) -> Reservation | None:
        units = checked_units(amount_usd)
        buckets = buckets_for(self.limits, scope_keys, now)
        accounts = [self._account(b, now) for b in buckets]
        for bucket, account in zip(buckets, accounts, strict=True):
            room = to_units(self.limits[bucket.scope].limit_usd, ROUND_FLOOR)
            if room - account.spent - account.reserved < units:
                return None
        rid, expires_at = uuid.uuid4().hex, now + self.reservation_ttl_s
        for account in accounts:
            account.live[rid] = units
            account.reserved += units
            heapq.heappush(account.expiries, (expires_at, rid))
        return Reservation(rid, amount_usd, buckets, expires_at, local)

    def finish_now(self, reservation: Reservation, charge: int | None) -> bool:
        done = False
        for bucket in reservation.buckets:
            account = self._accounts.get(bucket)
            if account is not None and account.finish(reservation.id, charge):
                done = True
        return done

    def usage_now(self, scope: str, now: float) -> BudgetUsage:
        limit = self.limits.get(scope)
        if limit is None:
            return BudgetUsage(scope, None, now, now, Decimal(0), Decimal(0))
        bucket = buckets_for(self.limits, [scope], now)[0]
        account = self._account(bucket, now)
        spent, reserved = to_usd(account.spent), to_usd(account.reserved)
        return BudgetUsage(scope, limit, bucket.start, bucket.end, spent, reserved)

    async def reserve(
        self, scope_keys: Sequence[str], amount_usd: Decimal, now: float
    ) -> Reservation | None:
        return self.reserve_now(scope_keys, amount_usd, now)

    async def settle(self, reservation: Reservation, actual_usd: Decimal, now: float) -> bool:
        return self.finish_now(reservation, checked_units(actual_usd))

    async def release(self, reservation: Reservation) -> bool:
        return self.finish_now(reservation, None)

    async def usage(self, scope: str, now: float) -> BudgetUsage:
        return self.usage_now(scope, now)


PURGE_LUA = """
local function purge(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, rid in ipairs(gone) do
    local units = redis.call('HGET', h, 'r:' .. rid)
    if units and units ~= 'x' then
      redis.call('HINCRBY', h, 'reserved', -tonumber(units))
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
        redis.call('HINCRBY', h, 'reserved', -tonumber(units))
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


class RedisBudget:
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
        self.guard = RedisGuard(client, "budget", self.options, on_recover=self.flush)
        self.pending: deque[_Pending] = deque(maxlen=max_pending)
        self._reserve = client.register_script(RESERVE_LUA)
        self._finish = client.register_script(FINISH_LUA)
        self._usage = client.register_script(USAGE_LUA)

    @property
    def redis_failures(self) -> int:
        return self.guard.failures

    @property
    def redis_available(self) -> bool:
        return self.guard.available

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
        if result is DOWN:
            if self.options.on_unavailable == "closed":
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
