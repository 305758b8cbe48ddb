"""`RedisHealthState` against a real Redis: the in-memory breaker scenarios, shared
state across instances and OS processes, and behaviour through a Redis outage."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Callable, Iterator

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
from tierwise.config import BreakerConfig, Cooldown
from tierwise.state import DeploymentHealth, HealthState, MemoryHealthState
from tierwise.state.memory import LATENCY_SMOOTHING
from tierwise.state.redis import RedisHealthState, RedisOptions, redis_client


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    yield from own_redis_server()


# --- Fixtures -------------------------------------------------------------------------

StateFactory = Callable[[BreakerConfig], HealthState]


@pytest.fixture(params=["memory", "redis"])
def make_state(request: pytest.FixtureRequest) -> StateFactory:
    if request.param == "memory":
        return MemoryHealthState
    client: Redis = request.getfixturevalue("client")
    options: RedisOptions = request.getfixturevalue("options")
    return lambda config: RedisHealthState(client, config, options)


def fast(
    threshold: int = 2, cooldown_s: float = 5.0, max_cooldown_s: float = 300.0
) -> BreakerConfig:
    return BreakerConfig(
        failure_threshold=threshold, cooldown_s=cooldown_s, max_cooldown_s=max_cooldown_s
    )


async def fail(
    state: HealthState, now: float, cooldown: Cooldown = Cooldown.COUNT, s: float | None = None
) -> None:
    await state.release("a", now, ok=False, latency_ms=None, cooldown=cooldown, cooldown_s=s)


async def trip(state: HealthState, now: float, times: int = 2) -> None:
    for _ in range(times):
        assert await state.acquire("a", now)
        await fail(state, now)


# --- The in-memory scenarios, for both implementations ----------------------------------


async def test_unknown_deployment_starts_healthy(make_state: StateFactory) -> None:
    state = make_state(BreakerConfig())
    assert await state.health("new", 3.0) == DeploymentHealth("closed", None, 0, 3.0)


async def test_acquire_and_release_track_in_flight(make_state: StateFactory) -> None:
    state = make_state(fast())
    assert await state.acquire("a", 0.0)
    assert await state.acquire("a", 0.0)
    assert await state.acquire("b", 0.0)
    assert (await state.health("a", 0.0)).in_flight == 2
    assert (await state.health("b", 0.0)).in_flight == 1
    for _ in range(3):  # the third is unmatched: never negative
        await state.release("a", 1.0, ok=True, latency_ms=None)
    assert (await state.health("a", 1.0)).in_flight == 0
    assert (await state.health("b", 1.0)).in_flight == 1


async def test_latency_is_an_ewma_of_successes_only(make_state: StateFactory) -> None:
    state = make_state(fast(threshold=5))
    for ok, latency in ((True, 100.0), (True, 200.0), (False, 9000.0), (True, None), (True, 50.0)):
        assert await state.acquire("a", 0.0)
        cooldown = Cooldown.NONE if ok else Cooldown.COUNT
        await state.release("a", 0.0, ok=ok, latency_ms=latency, cooldown=cooldown)
    expected = 100.0
    for latency in (200.0, 50.0):
        expected += LATENCY_SMOOTHING * (latency - expected)
    assert (await state.health("a", 0.0)).latency_ms == expected


async def test_count_failures_open_at_the_threshold(make_state: StateFactory) -> None:
    state = make_state(fast(threshold=3, cooldown_s=10.0))
    await trip(state, 100.0, times=2)
    assert (await state.health("a", 100.0)).state == "closed"
    assert await state.acquire("a", 101.0)
    await fail(state, 101.0)
    health = await state.health("a", 105.0)
    assert (health.state, health.reopens_at, health.in_flight) == ("open", 111.0, 0)
    assert not await state.acquire("a", 110.9)
    assert await state.acquire("b", 101.0)
    assert (await state.health("a", 200.0)).reopens_at == 200.0


async def test_immediate_failure_passes_the_retry_after_through(make_state: StateFactory) -> None:
    state = make_state(fast())
    assert await state.acquire("a", 0.0)
    await fail(state, 2.0, Cooldown.IMMEDIATE, 7.0)
    health = await state.health("a", 3.0)
    assert (health.state, health.reopens_at) == ("open", 9.0)


async def test_immediate_without_retry_after_and_count_with_one(make_state: StateFactory) -> None:
    state = make_state(fast(threshold=1, cooldown_s=10.0, max_cooldown_s=25.0))
    await fail(state, 7.0, Cooldown.IMMEDIATE)
    assert (await state.health("a", 7.0)).reopens_at == 17.0
    await state.release(
        "b", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.COUNT, cooldown_s=2.0
    )
    assert (await state.health("b", 0.0)).reopens_at == 2.0
    await state.release(
        "c", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.IMMEDIATE, cooldown_s=90
    )
    assert (await state.health("c", 0.0)).reopens_at == 25.0


async def test_half_open_allows_one_probe(make_state: StateFactory) -> None:
    state = make_state(fast())
    await state.acquire("a", 0.0)
    await fail(state, 0.0, Cooldown.IMMEDIATE)
    assert not await state.acquire("a", 4.0)
    assert await state.acquire("a", 5.0)
    assert (await state.health("a", 5.0)).state == "half_open"
    assert not await state.acquire("a", 5.0)
    await state.release("a", 6.0, ok=True, latency_ms=40.0)
    health = await state.health("a", 6.0)
    assert (health.state, health.in_flight, health.latency_ms) == ("closed", 0, 40.0)
    await trip(state, 7.0)  # trips were forgotten: the base cooldown again
    assert (await state.health("a", 7.0)).reopens_at == 12.0


async def test_probe_failures_double_the_cooldown_up_to_the_cap(make_state: StateFactory) -> None:
    state = make_state(fast(threshold=3, cooldown_s=10.0, max_cooldown_s=25.0))
    await trip(state, 0.0, times=3)
    opens = []
    for _ in range(4):
        now = (await state.health("a", 0.0)).reopens_at
        assert not await state.acquire("a", now - 0.01)
        assert await state.acquire("a", now)
        await fail(state, now)
        opens.append((await state.health("a", now)).reopens_at - now)
    assert opens == [20.0, 25.0, 25.0, 25.0]


async def test_probe_failure_with_retry_after_takes_the_longer_wait(
    make_state: StateFactory,
) -> None:
    state = make_state(fast(threshold=1, cooldown_s=10.0, max_cooldown_s=100.0))
    await trip(state, 0.0, times=1)
    assert await state.acquire("a", 10.0)
    await fail(state, 10.0, Cooldown.IMMEDIATE, 5.0)
    assert (await state.health("a", 10.0)).reopens_at == 30.0
    assert await state.acquire("a", 30.0)
    await fail(state, 30.0, Cooldown.IMMEDIATE, 70.0)
    assert (await state.health("a", 30.0)).reopens_at == 100.0


async def test_many_trips_stay_capped(make_state: StateFactory) -> None:
    state = make_state(fast(threshold=1, cooldown_s=1.0, max_cooldown_s=60.0))
    now = 0.0
    for _ in range(40):
        await fail(state, now)
        reopens = (await state.health("a", now)).reopens_at
        assert reopens - now <= 60.0
        now = reopens
        assert await state.acquire("a", now)
    await fail(state, now)
    assert (await state.health("a", now)).reopens_at - now == 60.0


async def test_a_stale_probe_is_replaced(make_state: StateFactory) -> None:
    state = make_state(fast(threshold=1, cooldown_s=10.0))
    await trip(state, 0.0, times=1)
    assert await state.acquire("a", 10.0)
    assert (await state.health("a", 12.0)).reopens_at == 20.0
    assert not await state.acquire("a", 20.0)
    assert await state.acquire("a", 20.5)
    assert not await state.acquire("a", 20.6)
    zero = make_state(fast(threshold=1, cooldown_s=0.0))
    await zero.release("z", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.COUNT)
    assert await zero.acquire("z", 0.0)
    assert not await zero.acquire("z", 1.0)  # at least one second
    assert await zero.acquire("z", 1.01)


async def test_cooldown_none_failures(make_state: StateFactory) -> None:
    state = make_state(fast())
    await trip(state, 0.0, times=1)
    await fail(state, 0.0, Cooldown.NONE)  # resets the count
    await trip(state, 0.0, times=1)
    assert (await state.health("a", 0.0)).state == "closed"
    await trip(state, 0.0, times=1)
    assert await state.acquire("a", 5.0)  # the probe
    await fail(state, 5.5, Cooldown.NONE)  # the deployment answered: closed
    assert (await state.health("a", 5.5)).state == "closed"


async def test_a_late_none_failure_does_not_cut_an_open_period_short(
    make_state: StateFactory,
) -> None:
    state = make_state(fast())
    assert await state.acquire("a", 0.0)
    assert await state.acquire("a", 0.0)
    await fail(state, 0.1, Cooldown.IMMEDIATE)
    await fail(state, 0.2, Cooldown.NONE)
    assert (await state.health("a", 0.2)).state == "open"
    assert not await state.acquire("a", 0.3)


async def test_late_failures_while_open_reopen_it_longer(make_state: StateFactory) -> None:
    state = make_state(fast(threshold=2, cooldown_s=10.0))
    for _ in range(4):
        assert await state.acquire("a", 0.0)
    await fail(state, 1.0, Cooldown.IMMEDIATE)
    await fail(state, 2.0)
    assert (await state.health("a", 2.0)).reopens_at == 11.0
    await fail(state, 3.0)  # the threshold again, while open: doubled from now
    assert (await state.health("a", 3.0)).reopens_at == 23.0


async def test_random_sequences_match_the_in_memory_state(
    client: Redis, options: RedisOptions
) -> None:
    """Same operations at the same times: both states answer alike at every step."""
    config = fast(threshold=3, cooldown_s=2.0, max_cooldown_s=20.0)
    memory, shared = MemoryHealthState(config), RedisHealthState(client, config, options)
    rng, now = random.Random(11), 1000.0
    kinds = [Cooldown.NONE, Cooldown.COUNT, Cooldown.COUNT, Cooldown.IMMEDIATE]
    for step in range(600):
        now += rng.choice([0.0, 0.1, 0.5, 1.0, 3.0, 7.3])
        name = rng.choice("abc")
        if rng.random() < 0.5:
            assert await memory.acquire(name, now) == await shared.acquire(name, now), step
        else:
            ok = rng.random() < 0.4
            args = {
                "ok": ok,
                "latency_ms": rng.choice([None, rng.uniform(1, 900)]),
                "cooldown": Cooldown.NONE if ok else rng.choice(kinds),
                "cooldown_s": rng.choice([None, None, 0.5, 4.0, 60.0]),
            }
            await memory.release(name, now, **args)  # type: ignore[arg-type]
            await shared.release(name, now, **args)  # type: ignore[arg-type]
        for d in "abc":
            assert await memory.health(d, now) == await shared.health(d, now), step


# --- Replicas sharing one namespace ----------------------------------------------------


async def test_two_replicas_share_the_breaker_load_and_latency(
    client: Redis, options: RedisOptions
) -> None:
    config = fast(threshold=2, cooldown_s=5.0)
    one, two = RedisHealthState(client, config, options), RedisHealthState(client, config, options)
    assert one.replica_id != two.replica_id
    assert await one.acquire("a", 0.0)
    assert await two.acquire("a", 0.0)
    assert (await one.health("a", 0.0)).in_flight == 2
    await one.release("a", 0.5, ok=True, latency_ms=80.0)
    assert (await two.health("a", 0.5)).latency_ms == 80.0
    await two.release("a", 1.0, ok=False, latency_ms=None, cooldown=Cooldown.IMMEDIATE)
    seen = await one.health("a", 1.0)
    assert (seen.state, seen.reopens_at, seen.in_flight) == ("open", 6.0, 0)
    assert not await one.acquire("a", 2.0)
    assert await two.acquire("a", 6.0)  # the probe, claimed through `two`
    assert not await one.acquire("a", 6.0)
    await two.release("a", 6.5, ok=True, latency_ms=None)
    assert await one.acquire("a", 6.5)


async def test_a_silent_replica_stops_counting_towards_the_load(
    client: Redis, options: RedisOptions
) -> None:
    crashed = RedisHealthState(client, fast(), options, inflight_ttl_s=60.0)
    alive = RedisHealthState(client, fast(), options, inflight_ttl_s=60.0)
    for _ in range(3):
        assert await crashed.acquire("a", 0.0)
    assert await alive.acquire("a", 30.0)
    assert (await alive.health("a", 30.0)).in_flight == 4
    assert (await alive.health("a", 61.0)).in_flight == 1
    await alive.release("a", 61.0, ok=True, latency_ms=None)
    fields = await client.hgetall(alive.key("a"))
    assert f"n:{crashed.replica_id}" not in fields  # pruned


CHILD = """
import asyncio, sys
from tierwise.config import BreakerConfig, Cooldown
from tierwise.state.redis import RedisHealthState, RedisOptions, redis_client

async def main(url, namespace, action, now):
    client = redis_client(url, timeout_s=2.0)
    config = BreakerConfig(failure_threshold=2, cooldown_s=5.0)
    state = RedisHealthState(client, config, RedisOptions(namespace=namespace, op_timeout_s=2.0))
    if action == "trip":
        for _ in range(2):
            assert await state.acquire("a", now)
            await state.release("a", now, ok=False, latency_ms=None, cooldown=Cooldown.COUNT)
    else:
        await client.rpush(namespace + ":ready", "1")
        await client.blpop([namespace + ":go"], timeout=10)
        print(int(await state.acquire("a", now)))
    await client.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


async def run_child(options: RedisOptions, action: str, now: float) -> str:
    args = [REDIS_URL, options.namespace, action, repr(now)]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, *args, stdout=pipe)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode().strip()


async def test_two_processes_share_state_through_redis(
    client: Redis, options: RedisOptions
) -> None:
    state = RedisHealthState(client, fast(threshold=2, cooldown_s=5.0), options)
    await run_child(options, "trip", 100.0)
    seen = await state.health("a", 101.0)
    assert (seen.state, seen.reopens_at) == ("open", 105.0)
    assert not await state.acquire("a", 101.0)
    # Two processes race for the single half-open probe: exactly one wins.
    racers = [asyncio.create_task(run_child(options, "probe", 105.0)) for _ in range(2)]
    await both_ready(client, options.namespace)
    await client.rpush(options.namespace + ":go", "go", "go")
    assert sorted(await asyncio.gather(*racers)) == ["0", "1"]
    assert (await state.health("a", 105.0)).state == "half_open"
    assert not await state.acquire("a", 105.0)
    await client.delete(options.namespace + ":go")


# --- Redis outages ---------------------------------------------------------------------


def outage_options(on_unavailable: str) -> RedisOptions:
    return unique_options(
        on_unavailable=on_unavailable, op_timeout_s=0.2, probe_min_s=0.05, probe_max_s=0.2
    )


async def test_outage_fails_open_on_local_state_then_returns_to_redis(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tierwise.state.redis")
    client = redis_client(own_redis.url)
    state = RedisHealthState(client, fast(threshold=1, cooldown_s=60.0), outage_options("open"))
    try:
        assert await state.acquire("a", 0.0)
        await fail(state, 0.0)
        assert not await state.acquire("a", 1.0)  # open, in Redis
        own_redis.stop()
        assert await state.acquire("a", 2.0)  # local state: nothing known, keep serving
        for t in range(20):
            assert await state.acquire("b", 3.0 + t)
            await state.release("b", 3.0 + t, ok=True, latency_ms=10.0)
        assert (await state.health("b", 30.0)).latency_ms == 10.0
        assert not state.redis_available
        await fail(state, 30.0)  # the local breaker trips
        assert not await state.acquire("a", 31.0)
        failures = state.redis_failures
        assert failures >= 1
        own_redis.start()
        await eventually(lambda: keeps_trying(state))
        assert await state.acquire("a", 32.0)  # the new Redis knows nothing yet
        assert await client.exists(state.key("a")) == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len([w for w in warnings if "unreachable" in w]) == 1
        assert len([w for w in warnings if "reachable again" in w]) == 1
    finally:
        await state.aclose()
        await client.aclose()


async def keeps_trying(state: RedisHealthState) -> bool:
    await state.health("a", 0.0)
    return state.redis_available


async def test_outage_fails_closed_then_recovers(own_redis: RedisServer) -> None:
    client = redis_client(own_redis.url)
    state = RedisHealthState(client, fast(), outage_options("closed"))
    try:
        assert await state.acquire("a", 0.0)
        own_redis.stop()
        await state.release("a", 1.0, ok=True, latency_ms=5.0)  # lost, but no error
        assert not await state.acquire("a", 1.0)
        assert not await state.acquire("b", 1.0)
        health = await state.health("a", 1.0)
        assert health.state == "open"
        assert 1.0 <= health.reopens_at <= 1.3
        own_redis.start()
        await eventually(lambda: keeps_trying(state))
        assert await state.acquire("a", 2.0)
    finally:
        await state.aclose()
        await client.aclose()


async def test_a_hung_redis_costs_at_most_the_operation_timeout(own_redis: RedisServer) -> None:
    client = redis_client(own_redis.url)
    state = RedisHealthState(client, fast(), outage_options("open"))
    try:
        assert await state.acquire("a", 0.0)
        own_redis.pause(True)
        async with asyncio.timeout(5):  # a hung Redis would otherwise hold them forever
            assert all(await asyncio.gather(*(state.acquire("a", 1.0) for _ in range(3))))
        assert not state.redis_available
        failures = state.redis_failures
        async with asyncio.timeout(5):
            results = await asyncio.gather(*(state.acquire("a", 1.0) for _ in range(50)))
        assert all(results)
        # No more waiting once marked down: the 50 never reach Redis (each would count
        # a failure); at most the background probes fail meanwhile.
        assert state.redis_failures - failures <= 2
        own_redis.pause(False)
        await eventually(lambda: keeps_trying(state))
    finally:
        await state.aclose()
        await client.aclose()
