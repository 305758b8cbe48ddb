"""Sliding-window request and token limits, in process and through a real Redis."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator, Mapping

import pytest

pytest.importorskip("redis")

from redis.asyncio import Redis

from tests.helpers import (
    RedisServer,
    eventually,
    own_redis_server,
    unique_options,
)
from tierwise.state.ratelimit import (
    Admission,
    Counts,
    MemoryRateLimiter,
    RateLimit,
    RateLimiter,
    rolled,
    wait_s,
)
from tierwise.state.redis import RedisOptions, redis_client
from tierwise.state.redis_ratelimit import RedisRateLimiter

T0 = 1_741_953_600.0  # the start of a minute
LimiterFactory = Callable[[Mapping[str, RateLimit]], RateLimiter]


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> LimiterFactory:
    if request.param == "memory":
        return MemoryRateLimiter
    client: Redis = request.getfixturevalue("client")
    options: RedisOptions = request.getfixturevalue("options")
    return lambda limits: RedisRateLimiter(client, limits, options)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    yield from own_redis_server()


# --- The window arithmetic ---------------------------------------------------------------


def test_windows_roll_forward_and_never_back() -> None:
    counts = Counts(10, (3, 4), (30, 40))
    assert rolled(counts, 600.0, 60.0) == (counts, 0.0)
    assert rolled(counts, 630.0, 60.0) == (counts, 0.5)
    assert rolled(counts, 675.0, 60.0) == (Counts(11, (4, 0), (40, 0)), 0.25)
    assert rolled(counts, 720.0, 60.0) == (Counts(12), 0.0)
    assert rolled(counts, 599.0, 60.0) == (counts, 0.0)  # a replica slightly behind
    assert rolled(None, 90.0, 60.0) == (Counts(1), 0.5)


def test_waits() -> None:
    assert wait_s((0, 5), 1, 5, 0.0, 60.0) == 72.0  # next window, once 4 of 5 remain
    # Within this window, once 10 * (1 - f) <= 10 - 4 - 1, at f = 0.5.
    assert wait_s((10, 4), 1, 10, 0.2, 60.0) == pytest.approx(18.0)
    assert wait_s((4, 1), 1, 5, 0.5, 60.0) == 0.0
    assert wait_s((0, 0), 6, 5, 0.0, 60.0) is None


def test_the_wait_is_exactly_when_the_call_fits() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        limit = rng.randint(1, 50)
        pair = (rng.randint(0, limit), rng.randint(0, limit))
        cost, now = rng.randint(0, limit), rng.uniform(60.0, 119.99)
        counts, frac = rolled(Counts(1, pair), now, 60.0)
        wait = wait_s(counts.requests, cost, limit, frac, 60.0)
        assert wait is not None
        if wait == 0.0:
            continue
        for t, expected in ((now + wait + 1e-6, True), (now + wait - 1e-6, False)):
            later, f = rolled(counts, t, 60.0)
            estimate = later.requests[0] * (1 - f) + later.requests[1] + cost
            assert (estimate <= limit) is expected or abs(estimate - limit) < 1e-6


# --- Both implementations ---------------------------------------------------------------


async def test_requests_per_minute(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter({"key:k": RateLimit(requests=5)})
    for _ in range(5):
        assert await limiter.admit(["key:k"], now=T0) == Admission(True, 0.0)
    refused = await limiter.admit(["key:k"], now=T0 + 1)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(71.0)
    assert not (await limiter.admit(["key:k"], now=T0 + 71.9)).allowed
    assert (await limiter.admit(["key:k"], now=T0 + 72)).allowed
    assert (await limiter.admit(["other"], now=T0)).allowed  # no limit configured


async def test_the_previous_window_counts_in_proportion(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter({"key:k": RateLimit(requests=10)})
    for _ in range(10):
        assert (await limiter.admit(["key:k"], now=T0 + 50)).allowed
    # Halfway through the next window half of the previous one still counts.
    results = [(await limiter.admit(["key:k"], now=T0 + 90)).allowed for _ in range(6)]
    assert results == [True] * 5 + [False]
    assert (await limiter.admit(["key:k"], now=T0 + 181)).allowed


async def test_tokens_per_minute_and_oversized_calls(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter({"model:m": RateLimit(requests=100, tokens=1000)})
    assert (await limiter.admit(["model:m"], tokens=600, now=T0)).allowed
    assert not (await limiter.admit(["model:m"], tokens=600, now=T0)).allowed
    assert (await limiter.admit(["model:m"], tokens=400, now=T0)).allowed
    assert await limiter.admit(["model:m"], tokens=1001, now=T0) == Admission(False, None)
    # The call used 300 fewer tokens than admitted: they are free again.
    await limiter.record_tokens(["model:m"], -300, now=T0 + 1)
    assert (await limiter.admit(["model:m"], tokens=300, now=T0 + 1)).allowed
    assert not (await limiter.admit(["model:m"], tokens=1, now=T0 + 1)).allowed


async def test_all_scopes_or_none(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter({"key:k": RateLimit(requests=10), "model:m": RateLimit(requests=2)})
    both = ["key:k", "model:m", "key:k"]
    assert [(await limiter.admit(both, now=T0)).allowed for _ in range(3)] == [True, True, False]
    # The refused call counted nowhere: 8 more fit the key.
    assert [(await limiter.admit(["key:k"], now=T0)).allowed for _ in range(9)] == [True] * 8 + [
        False
    ]


async def test_200_concurrent_admissions(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter({"key:k": RateLimit(requests=50, tokens=10_000)})
    results = await asyncio.gather(
        *(limiter.admit(["key:k"], tokens=100, now=T0 + 1) for _ in range(200))
    )
    assert sum(r.allowed for r in results) == 50


async def test_random_calls_match_the_in_memory_limiter(
    client: Redis, options: RedisOptions
) -> None:
    limits = {
        "key:a": RateLimit(requests=8, tokens=3000),
        "key:b": RateLimit(tokens=2000),
        "model:m": RateLimit(requests=12),
    }
    memory, shared = MemoryRateLimiter(limits), RedisRateLimiter(client, limits, options)
    rng, now = random.Random(3), T0
    for step in range(400):
        now += rng.choice([0.0, 0.0, 0.1, 0.3, 1.7, 5.0, 40.0])
        scopes = rng.sample(["key:a", "key:b", "model:m", "free"], rng.randint(1, 3))
        tokens = rng.choice([0, 50, 400, 900, 900, 6000])
        if rng.random() < 0.1:
            await memory.record_tokens(scopes, -tokens, now=now)
            await shared.record_tokens(scopes, -tokens, now=now)
            continue
        expected = await memory.admit(scopes, tokens=tokens, now=now)
        assert await shared.admit(scopes, tokens=tokens, now=now) == expected, step


# --- Redis outages ---------------------------------------------------------------------


async def test_outage_open_limits_locally_closed_refuses(own_redis: RedisServer) -> None:
    limits = {"key:k": RateLimit(requests=3)}
    client = redis_client(own_redis.url)
    opts = {"probe_min_s": 0.05, "probe_max_s": 0.2}
    open_ = RedisRateLimiter(client, limits, unique_options(on_unavailable="open", **opts))
    closed = RedisRateLimiter(client, limits, unique_options(on_unavailable="closed", **opts))
    try:
        assert [(await open_.admit(["key:k"], now=T0)).allowed for _ in range(3)] == [True] * 3
        own_redis.stop()
        local = [(await open_.admit(["key:k"], now=T0)).allowed for _ in range(4)]
        assert local == [True] * 3 + [False]  # fresh local counts, the same limit
        for _ in range(3):
            refused = await closed.admit(["key:k"], now=T0)
            assert not refused.allowed and refused.retry_after_s is not None
        assert not open_.redis_available and not closed.redis_available
        own_redis.start()

        async def back() -> bool:
            await open_.admit(["key:k"], now=T0 + 100)
            await closed.admit(["key:k"], now=T0 + 100)
            return open_.redis_available and closed.redis_available

        await eventually(back)
        assert (await closed.admit(["key:k"], now=T0 + 100)).allowed
    finally:
        await open_.aclose()
        await closed.aclose()
        await client.aclose()
