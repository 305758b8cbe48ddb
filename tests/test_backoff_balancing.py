"""Retry delays (exponential backoff, full jitter, Retry-After) and the order in
which a tier's deployments are tried (weighted, lowest latency, least busy)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tierwise.config import BackoffConfig, Balancing
from tierwise.resilience.backoff import retry_delay_s
from tierwise.resilience.balancing import Candidate, order_candidates

BACKOFF = BackoffConfig(base_s=1.0, max_s=8.0, max_retry_after_s=30.0)


# --- backoff ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_number", "ceiling"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 8.0), (10, 8.0)]
)
def test_full_jitter_stays_within_the_exponential_ceiling(
    retry_number: int, ceiling: float
) -> None:
    rng = random.Random(1234)
    delays = [retry_delay_s(BACKOFF, retry_number, None, rng) for _ in range(2000)]
    assert all(d is not None and 0.0 <= d <= ceiling for d in delays)
    values = [d for d in delays if d is not None]
    # Full jitter: spread over the whole interval, not bunched at the top.
    assert min(values) < 0.05 * ceiling
    assert max(values) > 0.95 * ceiling
    assert sum(values) / len(values) == pytest.approx(ceiling / 2, rel=0.1)


def test_delay_is_a_uniform_draw_from_the_given_rng() -> None:
    for seed in range(20):
        expected = random.Random(seed).uniform(0, 4.0)
        assert retry_delay_s(BACKOFF, 2, None, random.Random(seed)) == expected


def test_same_seed_gives_the_same_delays() -> None:
    first, second = random.Random(99), random.Random(99)
    assert [retry_delay_s(BACKOFF, n, None, first) for n in range(6)] == [
        retry_delay_s(BACKOFF, n, None, second) for n in range(6)
    ]


def test_zero_base_means_no_wait() -> None:
    config = BackoffConfig(base_s=0.0, max_s=8.0)
    assert retry_delay_s(config, 3, None, random.Random(0)) == 0.0


def test_retry_after_is_a_floor() -> None:
    rng = random.Random(5)
    # Longer than the ceiling (1 s on the first retry): exactly the Retry-After.
    assert all(retry_delay_s(BACKOFF, 0, 12.0, rng) == 12.0 for _ in range(100))
    # Shorter than the ceiling: never below it, sometimes above it.
    delays = [retry_delay_s(BACKOFF, 3, 2.0, rng) for _ in range(500)]
    values = [d for d in delays if d is not None]
    assert len(values) == 500
    assert all(2.0 <= d <= 8.0 for d in values)
    assert any(d > 2.0 for d in values)
    assert any(d == 2.0 for d in values)


def test_retry_after_of_zero_behaves_like_none() -> None:
    assert retry_delay_s(BACKOFF, 1, 0.0, random.Random(3)) == retry_delay_s(
        BACKOFF, 1, None, random.Random(3)
    )


def test_retry_after_up_to_the_limit_is_honoured() -> None:
    assert retry_delay_s(BACKOFF, 0, 30.0, random.Random(0)) == 30.0


def test_retry_after_beyond_the_limit_gives_up() -> None:
    rng = random.Random(0)
    state = rng.getstate()
    assert retry_delay_s(BACKOFF, 0, 30.001, rng) is None
    assert retry_delay_s(BACKOFF, 5, 3600.0, rng) is None
    assert rng.getstate() == state  # no draw was spent
    strict = BackoffConfig(base_s=1.0, max_s=8.0, max_retry_after_s=0.0)
    assert retry_delay_s(strict, 0, 0.5, random.Random(0)) is None


# --- balancing --------------------------------------------------------------------------


def cand(name: str, weight: float = 1.0, latency_ms: float | None = None, busy: int = 0):
    return Candidate(name, weight, latency_ms, busy)


def test_no_candidates_and_single_candidate() -> None:
    rng = random.Random(0)
    state = rng.getstate()
    for strategy in Balancing:
        assert order_candidates([], strategy, rng) == []
        assert order_candidates([cand("only", 0.5, 900.0, 7)], strategy, rng) == ["only"]
    assert rng.getstate() == state


@pytest.mark.parametrize("strategy", list(Balancing))
def test_every_strategy_returns_each_name_once(strategy: Balancing) -> None:
    rng = random.Random(11)
    candidates = [cand("a", 1, 50.0, 2), cand("b", 3, 10.0, 0), cand("c", 0.2, None, 1)]
    for _ in range(50):
        order = order_candidates(candidates, strategy, rng)
        assert sorted(order) == ["a", "b", "c"]


def test_weighted_first_choice_follows_the_weights() -> None:
    rng = random.Random(2024)
    candidates = [cand("a", 1.0), cand("b", 2.0), cand("c", 7.0)]
    draws = 10_000
    firsts = Counter(order_candidates(candidates, Balancing.WEIGHTED, rng)[0] for _ in range(draws))
    assert firsts["a"] / draws == pytest.approx(0.1, abs=0.015)
    assert firsts["b"] / draws == pytest.approx(0.2, abs=0.02)
    assert firsts["c"] / draws == pytest.approx(0.7, abs=0.02)


def test_weighted_second_choice_is_sampled_without_replacement() -> None:
    # After the heavy "c" is drawn first, "b" (weight 2) should follow "a" (weight 1)
    # two times in three.
    rng = random.Random(7)
    candidates = [cand("a", 1.0), cand("b", 2.0), cand("c", 7.0)]
    orders = [order_candidates(candidates, Balancing.WEIGHTED, rng) for _ in range(10_000)]
    after_c = Counter(o[1] for o in orders if o[0] == "c")
    assert after_c["b"] / sum(after_c.values()) == pytest.approx(2 / 3, abs=0.03)


def test_equal_weights_are_fair() -> None:
    rng = random.Random(1)
    candidates = [cand(name) for name in "abcd"]
    firsts = Counter(
        order_candidates(candidates, Balancing.WEIGHTED, rng)[0] for _ in range(10_000)
    )
    for name in "abcd":
        assert firsts[name] / 10_000 == pytest.approx(0.25, abs=0.02)


def test_lowest_latency_orders_by_measured_latency() -> None:
    candidates = [cand("slow", 100, 300.0), cand("fast", 1, 20.0), cand("mid", 1, 120.0)]
    for seed in range(20):
        order = order_candidates(candidates, Balancing.LOWEST_LATENCY, random.Random(seed))
        assert order == ["fast", "mid", "slow"]


def test_lowest_latency_tries_unmeasured_deployments_first() -> None:
    candidates = [cand("measured", 1, 5.0), cand("new", 1, None)]
    order = order_candidates(candidates, Balancing.LOWEST_LATENCY, random.Random(0))
    assert order == ["new", "measured"]


def test_lowest_latency_ties_are_broken_by_weight() -> None:
    rng = random.Random(3)
    candidates = [cand("light", 1, 50.0), cand("heavy", 9, 50.0), cand("slow", 1000, 80.0)]
    orders = [order_candidates(candidates, Balancing.LOWEST_LATENCY, rng) for _ in range(5000)]
    assert all(o[2] == "slow" for o in orders)
    heavy_first = sum(o[0] == "heavy" for o in orders) / len(orders)
    assert heavy_first == pytest.approx(0.9, abs=0.02)


def test_least_busy_orders_by_in_flight() -> None:
    candidates = [cand("busy", 50, busy=4), cand("idle", 1, busy=0), cand("some", 1, busy=1)]
    for seed in range(20):
        order = order_candidates(candidates, Balancing.LEAST_BUSY, random.Random(seed))
        assert order == ["idle", "some", "busy"]


def test_least_busy_ties_are_broken_by_weight() -> None:
    rng = random.Random(4)
    candidates = [cand("a", 1, busy=2), cand("b", 3, busy=2), cand("c", 1, busy=9)]
    orders = [order_candidates(candidates, Balancing.LEAST_BUSY, rng) for _ in range(5000)]
    assert all(o[2] == "c" for o in orders)
    assert sum(o[0] == "b" for o in orders) / len(orders) == pytest.approx(0.75, abs=0.02)


def test_seeded_orders_are_reproducible() -> None:
    candidates = [cand("a", 1), cand("b", 2), cand("c", 3)]
    first = [order_candidates(candidates, Balancing.WEIGHTED, random.Random(s)) for s in range(30)]
    again = [order_candidates(candidates, Balancing.WEIGHTED, random.Random(s)) for s in range(30)]
    assert first == again
    assert len({tuple(o) for o in first}) > 1
