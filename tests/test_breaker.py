"""The circuit breaker (closed -> open -> half-open -> closed) and the in-process
health state built on it. Both are pure: every call is given the time."""

from __future__ import annotations

import pytest

from tierwise.config import BreakerConfig, Cooldown
from tierwise.resilience.breaker import Breaker, BreakerState
from tierwise.state import DeploymentHealth, MemoryHealthState
from tierwise.state.memory import LATENCY_SMOOTHING


def make_breaker(threshold: int = 3, cooldown_s: float = 10.0, max_cooldown_s: float = 25.0):
    return Breaker(
        BreakerConfig(
            failure_threshold=threshold, cooldown_s=cooldown_s, max_cooldown_s=max_cooldown_s
        )
    )


# --- Breaker: closed -> open ------------------------------------------------------------


def test_new_breaker_is_closed_and_allows_calls() -> None:
    breaker = make_breaker()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow(t) for t in (0.0, 1.0, 2.0))
    assert breaker.reopens_at(5.0) == 5.0


def test_count_failures_open_only_at_the_threshold() -> None:
    breaker = make_breaker(threshold=3, cooldown_s=10.0)
    breaker.record_failure(100.0, Cooldown.COUNT)
    breaker.record_failure(100.0, Cooldown.COUNT)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow(100.0)
    breaker.record_failure(101.0, Cooldown.COUNT)
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until == 111.0
    assert not breaker.allow(101.0)
    assert not breaker.allow(110.9)
    assert breaker.reopens_at(105.0) == 111.0
    assert breaker.reopens_at(200.0) == 200.0


def test_threshold_of_one_opens_on_the_first_failure() -> None:
    breaker = make_breaker(threshold=1)
    breaker.record_failure(0.0, Cooldown.COUNT)
    assert breaker.state is BreakerState.OPEN


def test_success_resets_the_failure_count() -> None:
    breaker = make_breaker(threshold=3)
    breaker.record_failure(0.0, Cooldown.COUNT)
    breaker.record_failure(0.0, Cooldown.COUNT)
    breaker.record_success()
    assert breaker.failures == 0
    breaker.record_failure(1.0, Cooldown.COUNT)
    breaker.record_failure(1.0, Cooldown.COUNT)
    assert breaker.state is BreakerState.CLOSED


def test_none_scope_changes_nothing() -> None:
    breaker = make_breaker(threshold=1)
    for t in range(10):
        breaker.record_failure(float(t), Cooldown.NONE, cooldown_s=60.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.trips == 0
    assert breaker.allow(10.0)


def test_immediate_opens_at_once_for_the_given_retry_after() -> None:
    breaker = make_breaker(threshold=5, cooldown_s=10.0)
    breaker.record_failure(50.0, Cooldown.IMMEDIATE, cooldown_s=3.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until == 53.0
    assert not breaker.allow(52.9)
    assert breaker.allow(53.0)
    assert breaker.state is BreakerState.HALF_OPEN


def test_immediate_may_open_longer_than_the_configured_cooldown() -> None:
    breaker = make_breaker(cooldown_s=10.0, max_cooldown_s=25.0)
    breaker.record_failure(0.0, Cooldown.IMMEDIATE, cooldown_s=20.0)
    assert breaker.open_until == 20.0


def test_immediate_without_retry_after_uses_the_configured_cooldown() -> None:
    breaker = make_breaker(cooldown_s=10.0)
    breaker.record_failure(7.0, Cooldown.IMMEDIATE)
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until == 17.0


def test_count_failures_ignore_retry_after_below_the_cooldown() -> None:
    breaker = make_breaker(threshold=1, cooldown_s=10.0)
    breaker.record_failure(0.0, Cooldown.COUNT, cooldown_s=2.0)
    # On the first trip the given cooldown is used as is.
    assert breaker.open_until == 2.0


# --- Breaker: open -> half-open -> closed / open ----------------------------------------


def open_breaker(breaker: Breaker, now: float) -> None:
    for _ in range(breaker.config.failure_threshold):
        breaker.record_failure(now, Cooldown.COUNT)
    assert breaker.state is BreakerState.OPEN


def test_after_cooldown_exactly_one_probe_is_allowed() -> None:
    breaker = make_breaker(cooldown_s=10.0)
    open_breaker(breaker, 0.0)
    assert not breaker.allow(9.99)
    assert breaker.allow(10.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.probe_started == 10.0
    assert not breaker.allow(10.0)
    assert not breaker.allow(15.0)
    assert not breaker.allow(20.0)


def test_probe_success_closes_and_forgets_the_trips() -> None:
    breaker = make_breaker(cooldown_s=10.0)
    open_breaker(breaker, 0.0)
    assert breaker.allow(10.0)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.trips == 0
    assert breaker.probe_started is None
    assert all(breaker.allow(10.0) for _ in range(3))
    # Opening again starts from the base cooldown, not a doubled one.
    open_breaker(breaker, 20.0)
    assert breaker.open_until == 30.0


def test_probe_failure_reopens_with_a_doubled_cooldown_capped_at_the_maximum() -> None:
    breaker = make_breaker(threshold=3, cooldown_s=10.0, max_cooldown_s=25.0)
    open_breaker(breaker, 0.0)
    assert breaker.open_until == 10.0

    assert breaker.allow(10.0)
    breaker.record_failure(10.0, Cooldown.COUNT)  # one failure is enough while half-open
    assert breaker.state is BreakerState.OPEN
    assert breaker.open_until == 30.0  # 2 x 10

    assert not breaker.allow(29.0)
    assert breaker.allow(30.0)
    breaker.record_failure(30.0, Cooldown.COUNT)
    assert breaker.open_until == 55.0  # 4 x 10 = 40, capped at 25

    assert breaker.allow(55.0)
    breaker.record_failure(55.0, Cooldown.COUNT)
    assert breaker.open_until == 80.0  # still capped


def test_many_trips_stay_capped_without_overflow() -> None:
    breaker = make_breaker(threshold=1, cooldown_s=1.0, max_cooldown_s=60.0)
    now = 0.0
    for _ in range(200):
        breaker.record_failure(now, Cooldown.COUNT)
        assert breaker.open_until - now <= 60.0
        now = breaker.open_until
        assert breaker.allow(now)
    assert breaker.trips == 200
    breaker.record_failure(now, Cooldown.COUNT)
    assert breaker.open_until - now == 60.0


def test_probe_failure_with_retry_after_takes_the_longer_wait() -> None:
    breaker = make_breaker(cooldown_s=10.0, max_cooldown_s=100.0)
    open_breaker(breaker, 0.0)
    assert breaker.allow(10.0)
    breaker.record_failure(10.0, Cooldown.IMMEDIATE, cooldown_s=5.0)
    assert breaker.open_until == 30.0  # doubled cooldown 20 > Retry-After 5
    assert breaker.allow(30.0)
    breaker.record_failure(30.0, Cooldown.IMMEDIATE, cooldown_s=70.0)
    assert breaker.open_until == 100.0  # Retry-After 70 > doubled 40


def test_a_stale_probe_is_replaced() -> None:
    breaker = make_breaker(cooldown_s=10.0)
    open_breaker(breaker, 0.0)
    assert breaker.allow(10.0)
    # Still fresh at exactly one cooldown after the probe went out.
    assert not breaker.allow(20.0)
    # Past it, the probe is presumed lost and a new one may go out, just one.
    assert breaker.allow(20.5)
    assert breaker.probe_started == 20.5
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(20.6)


def test_stale_probe_wait_is_at_least_one_second() -> None:
    breaker = make_breaker(cooldown_s=0.0)
    open_breaker(breaker, 0.0)
    assert breaker.allow(0.0)
    assert not breaker.allow(0.5)
    assert not breaker.allow(1.0)
    assert breaker.allow(1.01)


def test_reopens_at_while_the_probe_is_out_is_when_it_goes_stale() -> None:
    breaker = make_breaker(cooldown_s=10.0)
    open_breaker(breaker, 0.0)
    assert breaker.reopens_at(5.0) == 10.0
    assert breaker.allow(10.0)
    assert breaker.reopens_at(12.0) == 20.0
    assert not breaker.allow(12.0)


# --- MemoryHealthState ------------------------------------------------------------------


def fast_state() -> MemoryHealthState:
    return MemoryHealthState(BreakerConfig(failure_threshold=2, cooldown_s=5.0))


async def test_unknown_deployment_starts_healthy() -> None:
    state = MemoryHealthState()
    health = await state.health("new", 3.0)
    assert health == DeploymentHealth("closed", None, 0, 3.0)


async def test_acquire_and_release_track_in_flight() -> None:
    state = fast_state()
    assert await state.acquire("a", 0.0)
    assert await state.acquire("a", 0.0)
    assert await state.acquire("b", 0.0)
    assert (await state.health("a", 0.0)).in_flight == 2
    assert (await state.health("b", 0.0)).in_flight == 1
    await state.release("a", 1.0, ok=True, latency_ms=None)
    assert (await state.health("a", 1.0)).in_flight == 1
    await state.release("a", 1.0, ok=True, latency_ms=None)
    await state.release("a", 1.0, ok=True, latency_ms=None)  # unmatched: never negative
    assert (await state.health("a", 1.0)).in_flight == 0
    assert (await state.health("b", 1.0)).in_flight == 1


async def test_latency_is_an_exponentially_weighted_average_of_successes() -> None:
    state = fast_state()
    for latency in (100.0, 200.0, 50.0):
        assert await state.acquire("a", 0.0)
        await state.release("a", 0.0, ok=True, latency_ms=latency)
    expected = 100.0
    for latency in (200.0, 50.0):
        expected += LATENCY_SMOOTHING * (latency - expected)
    assert pytest.approx(0.2) == LATENCY_SMOOTHING
    assert expected == pytest.approx(106.0)  # 100 -> 120 -> 106
    assert (await state.health("a", 0.0)).latency_ms == pytest.approx(expected)


async def test_failures_and_missing_latencies_do_not_move_the_average() -> None:
    state = fast_state()
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=True, latency_ms=100.0)
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=False, latency_ms=9000.0, cooldown=Cooldown.COUNT)
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=True, latency_ms=None)
    assert (await state.health("a", 0.0)).latency_ms == 100.0


async def test_count_failures_open_the_breaker_and_acquire_refuses() -> None:
    state = fast_state()
    for _ in range(2):
        assert await state.acquire("a", 0.0)
        await state.release("a", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.COUNT)
    health = await state.health("a", 1.0)
    assert health.state == "open"
    assert health.reopens_at == 5.0
    assert not await state.acquire("a", 1.0)
    assert (await state.health("a", 1.0)).in_flight == 0
    # Other deployments are unaffected.
    assert await state.acquire("b", 1.0)


async def test_immediate_failure_passes_the_retry_after_through() -> None:
    state = fast_state()
    assert await state.acquire("a", 0.0)
    await state.release(
        "a", 2.0, ok=False, latency_ms=None, cooldown=Cooldown.IMMEDIATE, cooldown_s=7.0
    )
    health = await state.health("a", 3.0)
    assert (health.state, health.reopens_at) == ("open", 9.0)


async def test_half_open_probe_through_the_state() -> None:
    state = fast_state()
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.IMMEDIATE)
    assert not await state.acquire("a", 4.0)
    assert await state.acquire("a", 5.0)
    assert (await state.health("a", 5.0)).state == "half_open"
    assert not await state.acquire("a", 5.0)
    await state.release("a", 6.0, ok=True, latency_ms=40.0)
    health = await state.health("a", 6.0)
    assert (health.state, health.in_flight, health.latency_ms) == ("closed", 0, 40.0)


async def test_a_cooldown_none_failure_closes_the_breaker() -> None:
    state = fast_state()
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.COUNT)
    # One counted failure so far; a NONE failure (the request's fault) resets it.
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.NONE)
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.COUNT)
    assert (await state.health("a", 0.0)).state == "closed"


async def test_a_cooldown_none_failure_of_the_probe_closes_the_breaker() -> None:
    state = fast_state()
    await state.acquire("a", 0.0)
    await state.release("a", 0.0, ok=False, latency_ms=None, cooldown=Cooldown.IMMEDIATE)
    assert await state.acquire("a", 5.0)
    await state.release("a", 5.5, ok=False, latency_ms=None, cooldown=Cooldown.NONE)
    assert (await state.health("a", 5.5)).state == "closed"
    assert await state.acquire("a", 5.5)


async def test_a_late_cooldown_none_failure_does_not_cut_an_open_period_short() -> None:
    state = fast_state()
    assert await state.acquire("a", 0.0)
    assert await state.acquire("a", 0.0)
    await state.release("a", 0.1, ok=False, latency_ms=None, cooldown=Cooldown.IMMEDIATE)
    await state.release("a", 0.2, ok=False, latency_ms=None, cooldown=Cooldown.NONE)
    assert (await state.health("a", 0.2)).state == "open"
    assert not await state.acquire("a", 0.3)
