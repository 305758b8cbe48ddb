"""Experiment statistics: hand-computed formulas, and seeded simulations of peeking,
guardrails, bootstrap coverage and power."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from tierwise.experiments.stats import (
    Guardrail,
    SequentialResult,
    check_guardrail,
    confidence_sequence_half_width,
    decide_guardrail,
    describe,
    format_sample_guidance,
    minimum_detectable_effect,
    mixture_likelihood_ratio,
    running_p_value,
    sample_size_per_arm,
    sequential_sample_size_per_arm,
    sequential_test,
    tau2_for_effect,
)
from tierwise.stats import (
    Interval,
    Summary,
    bootstrap_ci,
    diff_ci,
    relative_diff_ci,
    savings_ci,
)

Counts = npt.NDArray[np.int64]
ALPHA = 0.05
PEEK_EVERY = 50
HORIZON = 2000
TAU2 = tau2_for_effect(0.02)
SATISFACTION = Guardrail("satisfaction", "higher_is_better", max_drop=0.02, alpha=ALPHA)


def bernoulli_looks(rng: np.random.Generator, runs: int, p: float) -> Counts:
    """Successes per run at every look (each PEEK_EVERY observations, up to HORIZON)."""
    draws = rng.random((runs, HORIZON)) < p
    return np.cumsum(draws, axis=1, dtype=np.int64)[:, PEEK_EVERY - 1 :: PEEK_EVERY]


def arm(n: int, successes: int) -> Summary:
    return Summary.from_sums(n, successes, successes)


def looks(treatment: Counts, control: Counts) -> list[list[tuple[Summary, Summary]]]:
    sizes = range(PEEK_EVERY, HORIZON + 1, PEEK_EVERY)
    return [
        [(arm(n, int(t)), arm(n, int(c))) for n, t, c in zip(sizes, t_run, c_run, strict=True)]
        for t_run, c_run in zip(treatment, control, strict=True)
    ]


def guardrail_fires(treatment_p: float, control_p: float, seed: int, runs: int = 200) -> float:
    """Share of runs where the satisfaction guardrail ever fires before HORIZON."""
    rng = np.random.default_rng(seed)
    t, c = bernoulli_looks(rng, runs, treatment_p), bernoulli_looks(rng, runs, control_p)
    fired = [
        any(check_guardrail(SATISFACTION, a, b, tau2=TAU2) == "fire" for a, b in run)
        for run in looks(t, c)
    ]
    return sum(fired) / runs


def test_summary_from_sums_matches_values() -> None:
    s = Summary.from_sums(4, 10.0, 30.0)
    assert (s.n, s.mean) == (4, 2.5)
    assert s.variance == pytest.approx(5 / 3)
    assert s.variance_of_mean == pytest.approx(5 / 12)
    from_values = Summary.from_values([1, 2, 3, 4])
    assert (from_values.n, from_values.mean) == (4, 2.5)
    assert from_values.variance == pytest.approx(5 / 3)
    bits = np.array([1, 0, 1, 1, 0, 1, 1, 1])
    from_bits = Summary.from_values(bits)
    from_counts = arm(8, 6)
    assert from_bits.mean == from_counts.mean
    assert from_bits.variance == pytest.approx(from_counts.variance)


def test_summary_small_and_degenerate_samples() -> None:
    empty, single = Summary.from_sums(0, 0.0, 0.0), Summary.from_values([3.0])
    assert math.isnan(empty.mean) and math.isnan(empty.variance)
    assert single.mean == 3.0 and math.isnan(single.variance)
    assert Summary.from_sums(3, 3e8, 3e16).variance == 0.0
    assert math.isnan(diff_ci(single, Summary.from_values([1.0, 2.0])).lower)
    with pytest.raises(ValueError):
        Summary.from_sums(-1, 0.0, 0.0)


def test_diff_ci_by_hand() -> None:
    ci = diff_ci(Summary(100, 0.5, 0.25), Summary(100, 0.4, 0.24))
    half = 1.959964 * 0.07
    assert ci.estimate == pytest.approx(0.1)
    assert (ci.lower, ci.upper) == pytest.approx((0.1 - half, 0.1 + half), abs=1e-6)
    assert ci.contains(0.0) and not ci.excludes(0.0)
    assert diff_ci(Summary(100, 0.5, 0.25), Summary(100, 0.4, 0.24), alpha=0.5).excludes(0.0)


def test_relative_and_savings_by_hand() -> None:
    t, c = Summary(100, 2.0, 1.0), Summary(100, 4.0, 4.0)
    rel = relative_diff_ci(t, c)
    half = 1.959964 * math.sqrt(0.00125)
    assert rel.estimate == pytest.approx(-0.5)
    assert (rel.lower, rel.upper) == pytest.approx((-0.5 - half, -0.5 + half), abs=1e-6)
    saved = savings_ci(t, c)
    assert (saved.estimate, saved.lower, saved.upper) == pytest.approx(
        (0.5, 0.5 - half, 0.5 + half)
    )
    assert math.isnan(relative_diff_ci(t, Summary(10, 0.0, 0.0)).estimate)


def test_mixture_likelihood_ratio_and_half_width_by_hand() -> None:
    assert mixture_likelihood_ratio(2.0, 1.0, 3.0) == pytest.approx(0.5 * math.exp(1.5))
    width = math.sqrt(4 / 3 * (math.log(4) + 2 * math.log(20)))
    assert confidence_sequence_half_width(1.0, 3.0, 0.05) == pytest.approx(width)
    assert width == pytest.approx(3.136401, abs=1e-6)
    result = sequential_test(Summary(100, 2.0, 50.0), Summary(100, 0.0, 50.0), tau2=3.0)
    assert result.p_value == pytest.approx(2 * math.exp(-1.5))
    assert (result.lower, result.upper) == pytest.approx((2 - width, 2 + width))
    assert not result.significant
    assert mixture_likelihood_ratio(1e3, 1e-6, 1.0) == math.inf


def test_sequential_p_value_agrees_with_confidence_sequence() -> None:
    for shift in np.linspace(-0.3, 0.3, 61):
        result = sequential_test(
            Summary(400, 0.5 + shift, 0.25), Summary(400, 0.5, 0.25), tau2=0.01
        )
        assert result.significant == (result.lower > 0 or result.upper < 0)
        assert 0 < result.p_value <= 1


def test_sequential_test_without_variance_is_uninformative() -> None:
    result = sequential_test(arm(50, 50), arm(50, 50), tau2=TAU2)
    assert (result.lower, result.upper, result.p_value) == (-math.inf, math.inf, 1.0)
    assert not result.significant
    assert decide_guardrail(SATISFACTION, result) == "continue"
    with pytest.raises(ValueError):
        sequential_test(arm(50, 25), arm(50, 25), tau2=0.0)


def test_running_p_value() -> None:
    assert running_p_value(None, 0.4) == 0.4
    assert running_p_value(0.2, 0.4) == 0.2
    assert running_p_value(0.2, 0.1) == 0.1


def test_aa_peeking_is_safe_only_with_the_sequential_test() -> None:
    runs = 400
    rng = np.random.default_rng(20240517)
    t, c = bernoulli_looks(rng, runs, 0.8), bernoulli_looks(rng, runs, 0.8)
    sequential_fp = naive_fp = 0
    for run in looks(t, c):
        p: float | None = None
        for a, b in run:
            p = running_p_value(p, sequential_test(a, b, tau2=TAU2, alpha=ALPHA).p_value)
        sequential_fp += p is not None and p <= ALPHA
        naive_fp += any(diff_ci(a, b, alpha=ALPHA).excludes(0.0) for a, b in run)
    assert sequential_fp / runs <= ALPHA
    assert naive_fp / runs >= 3 * ALPHA


def test_guardrail_decisions_by_direction() -> None:
    def result(lower: float, upper: float) -> SequentialResult:
        return SequentialResult((lower + upper) / 2, lower, upper, 0.5, False, ALPHA)

    assert decide_guardrail(SATISFACTION, result(-0.09, -0.03)) == "fire"
    assert decide_guardrail(SATISFACTION, result(-0.01, 0.04)) == "safe"
    assert decide_guardrail(SATISFACTION, result(-0.05, 0.01)) == "continue"
    latency = Guardrail("latency_ms", "lower_is_better", max_drop=50.0, alpha=ALPHA)
    assert decide_guardrail(latency, result(60.0, 90.0)) == "fire"
    assert decide_guardrail(latency, result(-20.0, 40.0)) == "safe"
    assert decide_guardrail(latency, result(10.0, 70.0)) == "continue"
    with pytest.raises(ValueError):
        decide_guardrail(SATISFACTION, SequentialResult(0.0, -1.0, 1.0, 1.0, False, 0.1))
    with pytest.raises(ValueError):
        Guardrail("satisfaction", "higher_is_better", max_drop=-0.1)


def test_planted_quality_drop_fires_the_guardrail() -> None:
    assert guardrail_fires(0.70, 0.80, seed=11) >= 0.95


def test_improvement_and_equal_arms_do_not_fire_the_guardrail() -> None:
    assert guardrail_fires(0.85, 0.80, seed=12) == 0.0
    assert guardrail_fires(0.80, 0.80, seed=13) <= ALPHA


def test_bootstrap_covers_the_true_difference() -> None:
    rng = np.random.default_rng(7)
    runs, covered_diff, covered_rel = 200, 0, 0
    for _ in range(runs):
        t, c = rng.exponential(1.0, 120), rng.exponential(2.5, 120)
        result = bootstrap_ci(t, c, rng, resamples=400)
        covered_diff += result.difference.contains(-1.5)
        covered_rel += result.relative.contains(-0.6)
    assert 0.88 <= covered_diff / runs <= 0.99
    assert 0.88 <= covered_rel / runs <= 0.99


def test_bootstrap_point_estimates_and_inputs() -> None:
    rng = np.random.default_rng(3)
    result = bootstrap_ci([2.0, 4.0, 6.0], [8.0, 8.0, 8.0], rng, resamples=50)
    assert result.difference.estimate == pytest.approx(-4.0)
    assert result.relative.estimate == pytest.approx(-0.5)
    assert result.relative.negated().estimate == pytest.approx(0.5)
    assert result.difference.lower <= -4.0 <= result.difference.upper
    with pytest.raises(ValueError):
        bootstrap_ci([], [1.0], rng)


def test_power_by_hand() -> None:
    z = 1.959964 + 0.841621
    mde = minimum_detectable_effect(Summary(1000, 0.8, 0.16), Summary(1000, 0.8, 0.16))
    assert mde == pytest.approx(z * math.sqrt(0.32 / 1000), rel=1e-5)
    assert sample_size_per_arm(0.02, 0.16, 0.16) == math.ceil(z * z * 0.32 / 0.0004)


@pytest.mark.parametrize("n", [50, 317, 1000, 12_345])
def test_mde_and_sample_size_are_consistent(n: int) -> None:
    t, c = Summary(n, 0.75, 0.19), Summary(n, 0.8, 0.16)
    mde = minimum_detectable_effect(t, c, alpha=0.01, power=0.9)
    assert sample_size_per_arm(mde, 0.19, 0.16, alpha=0.01, power=0.9) in (n, n + 1)


def test_sequential_sample_size_exceeds_fixed_and_achieves_power() -> None:
    fixed = sample_size_per_arm(0.1, 0.21, 0.16)
    needed = sequential_sample_size_per_arm(0.1, 0.21, 0.16, tau2=TAU2)
    assert needed > fixed
    v = 0.37 / needed
    assert confidence_sequence_half_width(v, TAU2, ALPHA) + 0.841621 * math.sqrt(v) <= 0.1
    v = 0.37 / (needed - 1)
    assert confidence_sequence_half_width(v, TAU2, ALPHA) + 0.841621 * math.sqrt(v) > 0.1


def test_sample_guidance_text() -> None:
    text = format_sample_guidance(0.02, 2837, 1000)
    assert text == "needs ~1,840 more requests with feedback per variant to detect a 2-point drop"
    assert format_sample_guidance(0.08, 40, 12, unit="requests").endswith(
        "~28 more requests per variant to detect an 8-point drop"
    )
    assert format_sample_guidance(0.015, 500, 900).startswith("has enough requests with feedback")
    assert "a 1.5-point drop" in format_sample_guidance(0.015, 500, 900)


def test_describe() -> None:
    savings = Interval(0.61, 0.57, 0.65)
    satisfaction = Interval(-0.008, -0.019, 0.003)
    expected = "routed saves 61% +/- 4%, satisfaction -0.8 pt +/- 1.1 pt, not significant"
    assert describe(savings, satisfaction) == expected
    drop = SequentialResult(-0.05, -0.08, -0.02, 0.001, True, ALPHA)
    assert describe(Interval(-0.12, -0.16, -0.08), drop, variant="router B") == (
        "router B costs 12% more +/- 4%, satisfaction -5.0 pt +/- 3.0 pt, significant"
    )
    unknown = SequentialResult(0.0, -math.inf, math.inf, 1.0, False, ALPHA)
    assert describe(Interval(math.nan, math.nan, math.nan), unknown) == (
        "routed savings unknown, satisfaction +0.0 pt +/- ? pt, not significant"
    )


def test_clustered_summary_matches_a_hand_computation() -> None:
    # units (total, count): (1, 2), (2, 2), (0, 1); ratio 3 / 5 = 0.6
    found = Summary.from_clusters(3, 3.0, 5.0, 5.0, 9.0, 6.0)
    assert found.n == 3 and found.mean == pytest.approx(0.6)
    spread = (1 - 1.2) ** 2 + (2 - 1.2) ** 2 + (0 - 0.6) ** 2
    assert found.variance_of_mean == pytest.approx(spread / (3 * 2 * (5 / 3) ** 2))
    values = np.array([0.0, 1.0, 1.0, 0.5])
    single = Summary.from_clusters(4, values.sum(), 4.0, values @ values, 4.0, values.sum())
    assert single.mean == pytest.approx(Summary.from_values(values).mean)
    assert single.variance == pytest.approx(Summary.from_values(values).variance)


def test_units_with_many_requests_need_the_clustered_variance() -> None:
    """A/A with users who differ (each has its own satisfaction rate) and send 20
    requests each: treating requests as independent fires far more often than alpha;
    the clustered summary keeps to it."""
    rng = np.random.default_rng(11)
    runs, users, per_user = 300, 100, 20
    rates = rng.beta(2, 2, size=(runs, 2, users))
    liked = rng.random((runs, 2, users, per_user)) < rates[..., None]
    naive = clustered = 0
    for run in range(runs):
        arms = []
        for arm in (0, 1):
            totals = liked[run, arm].sum(axis=1).astype(float)
            counts = np.full(users, float(per_user))
            arms.append(
                (
                    Summary.from_values(liked[run, arm].ravel().astype(float)),
                    Summary.from_clusters(
                        users, totals.sum(), counts.sum(), totals @ totals, counts @ counts,
                        totals @ counts,
                    ),
                )
            )  # fmt: skip
        naive += diff_ci(arms[0][0], arms[1][0]).excludes(0.0)
        clustered += diff_ci(arms[0][1], arms[1][1]).excludes(0.0)
    assert naive / runs > 0.3
    assert clustered / runs <= 0.08


def test_the_bootstrap_can_resample_units() -> None:
    sums_t, counts_t = [3.0, 1.0, 4.0], [4.0, 2.0, 4.0]
    sums_c, counts_c = [2.0, 2.0], [4.0, 4.0]
    found = bootstrap_ci(
        sums_t, sums_c, np.random.default_rng(0), resamples=500, counts=(counts_t, counts_c)
    )
    assert found.difference.estimate == pytest.approx(8 / 10 - 4 / 8)
    assert found.difference.lower <= found.difference.estimate <= found.difference.upper
    plain = bootstrap_ci([1.0, 0.0, 1.0], [1.0, 2.0], np.random.default_rng(0), resamples=200)
    ones = bootstrap_ci(
        [1.0, 0.0, 1.0],
        [1.0, 2.0],
        np.random.default_rng(0),
        resamples=200,
        counts=([1.0] * 3, [1.0] * 2),
    )
    assert plain == ones
    with pytest.raises(ValueError, match="one count per unit"):
        bootstrap_ci([1.0], [1.0], np.random.default_rng(0), counts=([1.0, 2.0], [1.0]))
