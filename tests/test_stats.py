"""The statistics shared by experiments and drift against known values and against an
independent computation."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from tierwise.drift.detect import quality_drift, tier_share_drift
from tierwise.stats import (
    Summary,
    bootstrap_ci,
    diff_ci,
    normal_quantile,
    normal_sf,
    z_test,
)


@pytest.mark.parametrize(
    ("p", "z"),
    [(0.975, 1.959963984540054), (0.995, 2.5758293035489004), (0.8, 0.8416212335729143)],
)
def test_normal_quantiles(p: float, z: float) -> None:
    assert normal_quantile(p) == pytest.approx(z, rel=1e-12)
    assert normal_sf(z) == pytest.approx(1 - p, rel=1e-9)


def test_the_normal_tail_keeps_its_digits() -> None:
    assert normal_sf(8.0) == pytest.approx(6.220960574271785e-16, rel=1e-9)
    assert normal_sf(20.0) == pytest.approx(2.7536241186062337e-89, rel=1e-9)
    assert normal_sf(-1.0) == pytest.approx(0.8413447460685429, rel=1e-12)


def _pearson(table: list[list[int]]) -> float:
    rows, columns = [sum(r) for r in table], [sum(c) for c in zip(*table, strict=True)]
    n = sum(rows)
    return sum(
        (table[i][j] - rows[i] * columns[j] / n) ** 2 / (rows[i] * columns[j] / n)
        for i in range(len(rows))
        for j in range(len(columns))
    )


@pytest.mark.parametrize(
    "table",
    [
        [[50, 30, 20], [40, 30, 30]],
        [[500, 300, 200], [420, 310, 270]],
        [[9, 7, 5, 3, 1], [1, 3, 5, 7, 9]],
        [[5000, 10, 2000, 700, 3], [4000, 40, 2600, 650, 9]],
    ],
)
def test_tier_share_p_values_match_the_chi_square_closed_form(table: list[list[int]]) -> None:
    """With an even number of degrees of freedom 2k, P(X > x) = e^(-x/2) sum_{i<k}
    (x/2)^i / i!."""
    tiers = [f"t{i}" for i in range(len(table[0]))]
    reference = dict(zip(tiers, table[0], strict=True))
    found = tier_share_drift(reference, dict(zip(tiers, table[1], strict=True)))
    x, k = _pearson(table), (len(tiers) - 1) // 2
    assert found.dof == len(tiers) - 1
    assert found.statistic == pytest.approx(x, rel=1e-12)
    tail = math.exp(-x / 2) * sum((x / 2) ** i / math.factorial(i) for i in range(k))
    assert found.p_value == pytest.approx(tail, rel=1e-9, abs=1e-300)


def test_the_tier_share_test_is_pearsons_without_continuity_correction() -> None:
    (a, b), (c, d) = (690, 310), (420, 580)
    n = a + b + c + d
    statistic = n * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    found = tier_share_drift({"cheap": a, "strong": b}, {"cheap": c, "strong": d})
    assert found.dof == 1
    assert found.statistic == pytest.approx(statistic, rel=1e-12)
    assert found.p_value == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-9)
    one_tier = tier_share_drift({"cheap": 5}, {"cheap": 9, "strong": 0})
    assert (one_tier.statistic, one_tier.dof, one_tier.p_value) == (0.0, 0, 1.0)


def test_z_test_by_hand() -> None:
    found = z_test(Summary(100, 0.5, 0.25), Summary(100, 0.4, 0.25))
    assert found.difference == pytest.approx(0.1)
    assert found.z == pytest.approx(0.1 / math.sqrt(0.005), rel=1e-12)
    assert found.p_value == pytest.approx(0.15729920705028513, rel=1e-9)
    assert z_test(Summary(5, 0.5, 0.0), Summary(5, 0.4, 0.0)).z == math.inf
    assert z_test(Summary(5, 0.5, 0.0), Summary(5, 0.5, 0.0)).p_value == 1.0
    drop = quality_drift({"t": Summary(100, 0.5, 0.25)}, {"t": Summary(100, 0.4, 0.25)})
    assert drop.tiers[0].p_value == found.p_value and drop.tiers[0].z == -found.z


def test_diff_ci_by_hand() -> None:
    found = diff_ci(Summary(400, 0.8, 0.16), Summary(400, 0.75, 0.19), alpha=0.05)
    half = 1.959963984540054 * math.sqrt(0.16 / 400 + 0.19 / 400)
    assert (found.lower, found.upper) == pytest.approx((0.05 - half, 0.05 + half), rel=1e-12)


def _reference_bootstrap(
    arms: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    rng: np.random.Generator,
    resamples: int,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of the difference and the ratio minus one, in plain numpy."""
    means = []
    for values, counts in arms:
        picks = rng.integers(0, values.size, size=(resamples, values.size))
        means.append(values[picks].sum(axis=1) / counts[picks].sum(axis=1))
    d = np.percentile(means[0] - means[1], [2.5, 97.5])
    r = np.percentile(means[0] / means[1] - 1, [2.5, 97.5])
    return (float(d[0]), float(d[1])), (float(r[0]), float(r[1]))


def test_the_bootstrap_matches_a_plain_numpy_resampling() -> None:
    data = np.random.default_rng(11)
    t, c = data.exponential(1.0, 150), data.exponential(2.5, 120)
    counts = (data.integers(1, 5, 150).astype(float), data.integers(1, 5, 120).astype(float))
    found = bootstrap_ci(t, c, np.random.default_rng(3), resamples=20_000, counts=counts)
    arms = [(t, counts[0]), (c, counts[1])]
    (d_lo, d_hi), (r_lo, r_hi) = _reference_bootstrap(arms, np.random.default_rng(4), 20_000)
    tolerance = 0.05
    assert found.difference.lower == pytest.approx(d_lo, abs=tolerance * (d_hi - d_lo))
    assert found.difference.upper == pytest.approx(d_hi, abs=tolerance * (d_hi - d_lo))
    assert found.relative.lower == pytest.approx(r_lo, abs=tolerance * (r_hi - r_lo))
    assert found.relative.upper == pytest.approx(r_hi, abs=tolerance * (r_hi - r_lo))
    estimate = t.sum() / counts[0].sum() - c.sum() / counts[1].sum()
    assert found.difference.estimate == pytest.approx(estimate, rel=1e-12)
    with pytest.raises(ValueError, match="two units"):
        bootstrap_ci([1.0], [1.0, 2.0], np.random.default_rng(0))
