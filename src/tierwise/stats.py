"""Statistics shared by experiments and drift: one sample's summary, intervals, normal
tail probabilities, the two-sample z-test and a unit-level bootstrap.

Every difference is treatment (or current) minus control (or reference), every alpha
two-sided. Functions are pure: inputs are numbers or arrays and randomness comes in as a
numpy Generator.

Importing this module needs neither numpy nor scipy, because the gateway's monitor and
admin API compute guardrails and experiment reports from summaries on every replica: the
normal distribution comes from the standard library (`statistics.NormalDist`, and
`math.erfc` for the upper tail). Only `Summary.from_values` (numpy) and `bootstrap_ci`
(numpy and scipy.stats) import their library when called, for drift checks and
bootstrap reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float64]

_NORMAL = NormalDist()
_BOOTSTRAP_BATCH_CELLS = 4_000_000


def normal_quantile(p: float) -> float:
    """Standard normal quantile at p, for 0 < p < 1."""
    return _NORMAL.inv_cdf(p)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z, through erfc: accurate far into the upper tail,
    where NormalDist.cdf(-z), computed through erf, loses digits."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def check_levels(**levels: float) -> None:
    """A ValueError unless every named level (alpha, power) lies in (0, 1)."""
    for name, value in levels.items():
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value}")


@dataclass(frozen=True, slots=True)
class Summary:
    """Count, mean and sample variance (ddof=1) of one sample.

    With n == 0 the mean is nan; with n < 2 the variance is nan, so intervals built
    on it come out nan (unknown) rather than falsely narrow.
    """

    n: int
    mean: float
    variance: float

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> Summary:
        """From sufficient statistics: count, sum and sum of squares."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return cls(0, math.nan, math.nan)
        mean = total / n
        if n == 1:
            return cls(1, mean, math.nan)
        return cls(n, mean, max(0.0, (total_sq - total * mean) / (n - 1)))

    @classmethod
    def from_clusters(
        cls, k: int, total: float, count: float, total_sq: float, count_sq: float, cross: float
    ) -> Summary:
        """The per-observation mean total / count when observations come in k
        independent units (users, sessions) of count_u observations summing to total_u;
        the sums run over units (total_sq = sum total_u^2, cross = sum total_u count_u).
        n is k, and variance / n is the ratio estimate's delta-method variance; with one
        observation per unit this is from_sums."""
        if k <= 0 or count <= 0:
            return cls(max(k, 0), math.nan, math.nan)
        mean = total / count
        if k == 1:
            return cls(1, mean, math.nan)
        spread = max(0.0, total_sq - 2 * mean * cross + mean * mean * count_sq)
        per_unit = count / k
        return cls(k, mean, spread / ((k - 1) * per_unit * per_unit))

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> Summary:
        """From raw observations (flattened)."""
        import numpy as np

        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size < 2:
            return cls.from_sums(arr.size, float(arr.sum()), float(arr @ arr))
        return cls(int(arr.size), float(arr.mean()), float(arr.var(ddof=1)))

    @property
    def variance_of_mean(self) -> float:
        """Squared standard error of the mean: variance / n."""
        return self.variance / self.n if self.n > 0 else math.nan


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a confidence interval [lower, upper]."""

    estimate: float
    lower: float
    upper: float

    @property
    def half_width(self) -> float:
        return (self.upper - self.lower) / 2

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def excludes(self, value: float) -> bool:
        """True only when the interval is known and lies wholly on one side of value."""
        return value < self.lower or value > self.upper

    def negated(self) -> Interval:
        """The interval of minus the quantity, e.g. savings from a relative change."""
        return Interval(-self.estimate, -self.upper, -self.lower)


def diff_ci(treatment: Summary, control: Summary, *, alpha: float = 0.05) -> Interval:
    """Welch (unequal variances) normal interval for mean_t - mean_c at level 1 - alpha."""
    check_levels(alpha=alpha)
    estimate = treatment.mean - control.mean
    spread = math.sqrt(treatment.variance_of_mean + control.variance_of_mean)
    half = normal_quantile(1 - alpha / 2) * spread
    return Interval(estimate, estimate - half, estimate + half)


def relative_diff_ci(treatment: Summary, control: Summary, *, alpha: float = 0.05) -> Interval:
    """Delta-method interval for mean_t / mean_c - 1 (independent arms)."""
    check_levels(alpha=alpha)
    if control.mean == 0 or math.isnan(control.mean):
        return Interval(math.nan, math.nan, math.nan)
    ratio = treatment.mean / control.mean
    spread = treatment.variance_of_mean + ratio**2 * control.variance_of_mean
    half = normal_quantile(1 - alpha / 2) * math.sqrt(spread) / abs(control.mean)
    return Interval(ratio - 1, ratio - 1 - half, ratio - 1 + half)


def savings_ci(treatment_cost: Summary, control_cost: Summary, *, alpha: float = 0.05) -> Interval:
    """Delta-method interval for the saving 1 - cost_t / cost_c."""
    return relative_diff_ci(treatment_cost, control_cost, alpha=alpha).negated()


@dataclass(frozen=True, slots=True)
class ZTest:
    """Two-sample z-test of mean_t - mean_c with Welch's standard error."""

    difference: float
    z: float
    p_value: float


def z_test(treatment: Summary, control: Summary) -> ZTest:
    """Two-sided z-test of mean_t - mean_c; a zero standard error gives z = 0 for no
    change and an infinite z (p = 0) for any change."""
    change = treatment.mean - control.mean
    se = math.sqrt(treatment.variance_of_mean + control.variance_of_mean)
    z = change / se if se > 0 else (0.0 if change == 0 else math.copysign(math.inf, change))
    return ZTest(change, z, min(1.0, 2.0 * normal_sf(abs(z))))


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """Percentile bootstrap intervals drawn from one set of resamples.

    `difference` is mean_t - mean_c; `relative` is the ratio mean_t / mean_c minus one
    (as in relative_diff_ci; the saving is relative.negated()).
    """

    difference: Interval
    relative: Interval


def _arm(values: npt.ArrayLike, counts: npt.ArrayLike | None) -> tuple[Vector, Vector]:
    import numpy as np

    v = np.asarray(values, dtype=np.float64).ravel()
    c = np.ones_like(v) if counts is None else np.asarray(counts, dtype=np.float64).ravel()
    if v.size == 0 or v.size != c.size:
        raise ValueError("each arm needs at least one unit, and one count per unit")
    if v.size < 2:
        raise ValueError("each arm needs at least two units to resample")
    return v, c


def _means_statistic(t: tuple[Vector, Vector], c: tuple[Vector, Vector]) -> Callable[..., Any]:
    """scipy's vectorised statistic over resampled unit indices of both arms: the
    difference and the ratio minus one of sum(values) / sum(counts)."""
    import numpy as np

    def statistic(picks_t: Any, picks_c: Any, axis: int = -1) -> Any:
        mean_t = t[0][picks_t].sum(axis=axis) / t[1][picks_t].sum(axis=axis)
        mean_c = c[0][picks_c].sum(axis=axis) / c[1][picks_c].sum(axis=axis)
        return np.stack([mean_t - mean_c, mean_t / mean_c - 1])

    return statistic


def bootstrap_ci(
    treatment: npt.ArrayLike,
    control: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    resamples: int = 2000,
    alpha: float = 0.05,
    counts: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
) -> BootstrapResult:
    """Percentile bootstrap (scipy.stats.bootstrap) of the difference and the ratio of
    means, each arm's units resampled on their own. With `counts`, each value is a unit's
    sum over that many observations, and a mean is the resampled sum over the resampled
    count. Each arm needs at least two units."""
    import numpy as np
    from scipy.stats import bootstrap

    check_levels(alpha=alpha)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    t = _arm(treatment, counts[0] if counts else None)
    c = _arm(control, counts[1] if counts else None)
    indices = (np.arange(t[0].size), np.arange(c[0].size))
    with np.errstate(divide="ignore", invalid="ignore"):
        found = bootstrap(
            indices,
            _means_statistic(t, c),
            n_resamples=resamples,
            batch=max(1, _BOOTSTRAP_BATCH_CELLS // max(t[0].size, c[0].size)),
            vectorized=True,
            confidence_level=1 - alpha,
            method="percentile",
            rng=rng,
        )
    (d_lo, r_lo), (d_hi, r_hi) = found.confidence_interval
    mean_t, mean_c = float(t[0].sum() / t[1].sum()), float(c[0].sum() / c[1].sum())
    point = mean_t / mean_c - 1 if mean_c != 0 else math.nan
    return BootstrapResult(
        difference=Interval(mean_t - mean_c, float(d_lo), float(d_hi)),
        relative=Interval(point, float(r_lo), float(r_hi)),
    )
