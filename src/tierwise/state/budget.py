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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Literal, Protocol

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
    limits: dict[str, BudgetLimit]
    """The limit of each scope; changing it changes what `reserve` checks."""

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

    def unavailable(self) -> bool:
        """Whether the last refused reservation was refused because the budget's
        shared store is unreachable (fail-closed), rather than because money ran out."""
        ...

    def retry_in_s(self) -> float:
        """Seconds until the shared store is tried again (0: it is tried at once)."""
        ...


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

    def unavailable(self) -> bool:
        return False

    def retry_in_s(self) -> float:
        return 0.0
