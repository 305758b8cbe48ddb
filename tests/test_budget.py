"""Budgets by reservation, in process and through a real Redis: no overspend under
concurrency (tasks and processes), calendar periods, stale reservations, scopes
reserved all or none, and Redis outages."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

pytest.importorskip("redis")

from redis.asyncio import Redis

from tests.helpers import (
    REDIS_URL,
    RedisServer,
    both_ready,
    eventually,
    own_redis_server,
    unique_options,
)
from tierwise.state.budget import (
    Budget,
    LimitSpec,
    MemoryBudget,
    Period,
    Reservation,
    period_bounds,
)
from tierwise.state.redis import RedisOptions, redis_client
from tierwise.state.redis_budget import RedisBudget


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[arg-type, misc]


NOW = at(2025, 3, 14, 12, 0, 30)
WORST = Decimal("0.0123")
SCOPES = ["key:k1", "team:t", "model:gpt-4o"]
D = Decimal
ZERO = Decimal(0)

BudgetFactory = Callable[..., Budget]


@pytest.fixture(params=["memory", "redis"])
def make_budget(request: pytest.FixtureRequest) -> BudgetFactory:
    if request.param == "memory":
        return MemoryBudget
    client: Redis = request.getfixturevalue("client")
    options: RedisOptions = request.getfixturevalue("options")

    def make(limits: dict[str, LimitSpec], **kwargs: float) -> Budget:
        return RedisBudget(client, limits, options, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    yield from own_redis_server()


# --- Periods ---------------------------------------------------------------------------


def test_periods_are_utc_calendar_periods() -> None:
    now = at(2024, 2, 29, 23, 59, 59)
    assert period_bounds(Period.MINUTE, now) == (at(2024, 2, 29, 23, 59), at(2024, 3, 1))
    assert period_bounds(Period.HOUR, now) == (at(2024, 2, 29, 23), at(2024, 3, 1))
    assert period_bounds(Period.DAY, now) == (at(2024, 2, 29), at(2024, 3, 1))
    assert period_bounds(Period.MONTH, now) == (at(2024, 2, 1), at(2024, 3, 1))
    assert period_bounds(Period.MONTH, at(2024, 12, 31, 23)) == (at(2024, 12, 1), at(2025, 1, 1))
    assert period_bounds(Period.MONTH, at(2025, 1, 1)) == (at(2025, 1, 1), at(2025, 2, 1))


# --- Concurrency: never more than the limit ----------------------------------------------


async def test_200_concurrent_reservations_fit_exactly_50(make_budget: BudgetFactory) -> None:
    budget = make_budget({s: (WORST * 50, "day") for s in SCOPES})
    results = await asyncio.gather(*(budget.reserve(SCOPES, WORST, NOW) for _ in range(200)))
    granted = [r for r in results if r is not None]
    assert len(granted) == 50
    for scope in SCOPES:
        usage = await budget.usage(scope, NOW)
        assert (usage.spent_usd, usage.reserved_usd, usage.remaining_usd) == (
            ZERO,
            WORST * 50,
            ZERO,
        )


async def test_interleaved_reserve_and_settle_never_overspend(make_budget: BudgetFactory) -> None:
    """200 requests reserve the worst case, run, and settle at most that; a monitor
    checks spent + reserved against the limit throughout."""
    limit = WORST * 50
    budget = make_budget({"team:t": (limit, "day"), "key:k1": (limit * 2, "day")})
    rng = random.Random(5)
    samples: list[Decimal] = []

    async def request() -> Decimal:
        await asyncio.sleep(rng.uniform(0, 0.05))
        reservation = await budget.reserve(["key:k1", "team:t"], WORST, NOW)
        if reservation is None:
            return D(0)
        await asyncio.sleep(rng.uniform(0, 0.02))
        actual = (WORST * D(rng.uniform(0.2, 1.0))).quantize(D("1e-9"))
        assert await budget.settle(reservation, actual, NOW + 1)
        return actual

    async def monitor() -> None:
        for _ in range(40):
            usage = await budget.usage("team:t", NOW + 1)
            samples.append(usage.spent_usd + usage.reserved_usd)
            await asyncio.sleep(0.002)

    watch = asyncio.create_task(monitor())
    costs = await asyncio.gather(*(request() for _ in range(200)))
    await watch
    usage = await budget.usage("team:t", NOW + 2)
    assert usage.reserved_usd == 0
    assert usage.spent_usd == sum(costs)
    assert usage.spent_usd <= limit  # overspend: 0
    assert max(samples) <= limit
    assert sum(1 for c in costs if c) > 50  # settling below the worst case freed room


CHILD = """
import asyncio, sys
from decimal import Decimal
from tierwise.state.redis_budget import RedisBudget
from tierwise.state.redis import RedisOptions, redis_client

async def main(url, namespace, limit, worst, now):
    client = redis_client(url, timeout_s=5.0)
    options = RedisOptions(namespace=namespace, op_timeout_s=5.0)
    budget = RedisBudget(client, {"team:t": (limit, "month")}, options)
    await client.rpush(namespace + ":ready", "1")
    await client.blpop([namespace + ":go"], timeout=20)

    async def one():
        r = await budget.reserve(["team:t"], Decimal(worst), now)
        if r is not None:
            await budget.settle(r, Decimal(worst), now)
        return r is not None

    print(sum(await asyncio.gather(*(one() for _ in range(100)))))
    await client.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
"""


async def test_two_processes_share_one_redis_budget(client: Redis, options: RedisOptions) -> None:
    limit = WORST * 50
    args = [REDIS_URL, options.namespace, str(limit), str(WORST), repr(NOW)]
    pipe = asyncio.subprocess.PIPE
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, *args, stdout=pipe)
        for _ in range(2)
    ]
    await both_ready(client, options.namespace)
    await client.rpush(options.namespace + ":go", "go", "go")
    outs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    granted = [int(out.decode()) for out, _ in outs]
    assert sum(granted) == 50
    budget = RedisBudget(client, {"team:t": (limit, "month")}, options)
    usage = await budget.usage("team:t", NOW)
    assert (usage.spent_usd, usage.reserved_usd) == (limit, ZERO)  # overspend: 0
    await client.delete(options.namespace + ":go")


# --- Periods, expiry, scopes, settling ---------------------------------------------------


async def test_a_new_period_starts_empty(make_budget: BudgetFactory) -> None:
    budget = make_budget({"key:k1": (D("1.00"), "minute"), "team:t": (D("5"), "month")})
    first = await budget.reserve(["key:k1"], D("1.00"), NOW)
    assert first is not None
    assert await budget.reserve(["key:k1"], D("0.01"), at(2025, 3, 14, 12, 0, 59)) is None
    later = await budget.reserve(["key:k1"], D("0.40"), at(2025, 3, 14, 12, 1))
    assert later is not None
    # A settle after the rollover is charged to the period the reservation was made in.
    await budget.settle(first, D("0.70"), at(2025, 3, 14, 12, 1, 5))
    old = await budget.usage("key:k1", NOW)
    new = await budget.usage("key:k1", at(2025, 3, 14, 12, 1, 6))
    assert (old.spent_usd, old.reserved_usd, old.start) == (D("0.70"), ZERO, at(2025, 3, 14, 12))
    assert (new.spent_usd, new.reserved_usd) == (ZERO, D("0.40"))
    end_of_january = at(2025, 1, 31, 23, 59, 59)
    assert await budget.reserve(["team:t"], D("5"), end_of_january) is not None
    assert await budget.reserve(["team:t"], D("5"), end_of_january) is None
    assert await budget.reserve(["team:t"], D("5"), at(2025, 2, 1)) is not None


async def test_stale_reservations_expire_and_a_late_settle_charges_once(
    make_budget: BudgetFactory,
) -> None:
    budget = make_budget({"team:t": (D("1"), "day")}, reservation_ttl_s=10.0)
    crashed = await budget.reserve(["team:t"], D("0.6"), NOW)
    slow = await budget.reserve(["team:t"], D("0.4"), NOW)
    assert crashed is not None and slow is not None
    assert await budget.reserve(["team:t"], D("0.5"), NOW + 9.9) is None
    fresh = await budget.reserve(["team:t"], D("0.5"), NOW + 10)
    assert fresh is not None
    usage = await budget.usage("team:t", NOW + 10)
    assert (usage.spent_usd, usage.reserved_usd) == (ZERO, D("0.5"))
    assert await budget.settle(slow, D("0.3"), NOW + 11)
    assert not await budget.settle(slow, D("0.3"), NOW + 12)
    assert not await budget.release(slow)
    usage = await budget.usage("team:t", NOW + 12)
    assert (usage.spent_usd, usage.reserved_usd) == (D("0.3"), D("0.5"))


async def test_one_full_scope_reserves_nothing_anywhere(make_budget: BudgetFactory) -> None:
    budget = make_budget({"key:k1": (D("1.00"), "day"), "team:t": (D("0.10"), "hour")})
    assert await budget.reserve(["key:k1", "team:t", "model:any"], D("0.06"), NOW) is not None
    assert await budget.reserve(["key:k1", "team:t", "model:any"], D("0.06"), NOW) is None
    key, team = await budget.usage("key:k1", NOW), await budget.usage("team:t", NOW)
    assert (key.reserved_usd, team.reserved_usd) == (D("0.06"), D("0.06"))
    assert await budget.reserve(["key:k1"], D("0.94"), NOW) is not None
    assert await budget.reserve(["key:k1"], D("1e-9"), NOW) is None
    unlimited = await budget.reserve(["model:any", "model:any"], D("1000"), NOW)
    assert unlimited is not None and unlimited.buckets == ()
    assert (await budget.usage("model:any", NOW)).remaining_usd is None


async def test_settle_and_release_count_once(make_budget: BudgetFactory) -> None:
    budget = make_budget({"team:t": (D("1"), "day")})
    a = await budget.reserve(["team:t", "team:t"], D("0.5"), NOW)
    b = await budget.reserve(["team:t"], D("0.5"), NOW)
    assert a is not None and b is not None
    assert await budget.settle(a, D("0.2"), NOW)
    assert not await budget.settle(a, D("0.2"), NOW)
    assert not await budget.release(a)
    assert await budget.release(b)
    assert not await budget.settle(b, D("0.5"), NOW)
    usage = await budget.usage("team:t", NOW)
    assert (usage.spent_usd, usage.reserved_usd, usage.remaining_usd) == (D("0.2"), ZERO, D("0.8"))
    over = await budget.reserve(["team:t"], D("0.8"), NOW)
    assert over is not None
    await budget.settle(over, D("0.9"), NOW)  # more than reserved: charged, and visible
    assert (await budget.usage("team:t", NOW)).remaining_usd == D("-0.1")
    with pytest.raises(ValueError):
        await budget.reserve(["team:t"], D("-1"), NOW)


async def test_tiny_amounts_are_kept_to_the_nano_dollar(make_budget: BudgetFactory) -> None:
    budget = make_budget({"key:k1": (D("0.000001"), "day")})
    one_token = D("0.15") / 1_000_000  # 1.5e-7 USD
    granted = [await budget.reserve(["key:k1"], one_token, NOW) for _ in range(7)]
    assert [r is not None for r in granted] == [True] * 6 + [False]
    assert (await budget.usage("key:k1", NOW)).reserved_usd == D("0.0000009")


# --- Redis outages ---------------------------------------------------------------------


def outage_budget(url: str, on_unavailable: str) -> tuple[Redis, RedisBudget]:
    client = redis_client(url)
    options = unique_options(on_unavailable=on_unavailable, probe_min_s=0.05, probe_max_s=0.2)
    return client, RedisBudget(client, {"team:t": (D("1"), "day")}, options)


async def recovered(budget: RedisBudget) -> bool:
    await budget.usage("team:t", NOW)
    return budget.redis_available and not budget.pending


async def test_outage_fails_open_locally_and_sends_the_spend_afterwards(
    own_redis: RedisServer,
) -> None:
    client, budget = outage_budget(own_redis.url, "open")
    try:
        shared = await budget.reserve(["team:t"], D("0.5"), NOW)
        assert shared is not None and not shared.local
        own_redis.pause(True)
        assert await budget.settle(shared, D("0.25"), NOW)  # queued
        local = await budget.reserve(["team:t"], D("0.9"), NOW)
        assert local is not None and local.local  # the local budget is whole
        assert await budget.settle(local, D("0.5"), NOW)
        assert len(budget.pending) == 2 and budget.redis_failures >= 1
        own_redis.pause(False)
        await eventually(lambda: recovered(budget))
        usage = await budget.usage("team:t", NOW)
        assert (usage.spent_usd, usage.reserved_usd) == (D("0.75"), ZERO)
        assert await budget.reserve(["team:t"], D("0.3"), NOW) is None
    finally:
        await budget.aclose()
        await client.aclose()


async def test_outage_fails_closed_then_recovers(own_redis: RedisServer) -> None:
    client, budget = outage_budget(own_redis.url, "closed")
    try:
        assert await budget.reserve(["team:t"], D("0.1"), NOW) is not None
        own_redis.stop()
        for _ in range(3):
            assert await budget.reserve(["team:t"], D("0.1"), NOW) is None
        assert not budget.redis_available
        own_redis.start()
        await eventually(lambda: recovered(budget))
        reservation = await budget.reserve(["team:t"], D("0.1"), NOW)
        assert isinstance(reservation, Reservation) and not reservation.local
    finally:
        await budget.aclose()
        await client.aclose()


async def test_a_zero_reservation_settles_and_charges(make_budget: BudgetFactory) -> None:
    """A request reserved at $0 (a free deployment) still settles what it spent."""
    budget = make_budget({"team:t": (D("1.00"), "day")})
    reservation = await budget.reserve(["team:t"], ZERO, NOW)
    assert reservation is not None
    assert await budget.settle(reservation, D("0.25"), NOW + 1)
    usage = await budget.usage("team:t", NOW + 2)
    assert (usage.spent_usd, usage.reserved_usd) == (D("0.25"), ZERO)
