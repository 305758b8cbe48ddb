"""Pure tests for drift between a reference window of traffic and the current one.

Three signals, each a frozen result with `drifted` and `describe()`:
  tier_share_drift  the share of requests per tier: a chi-square test of homogeneity on
                    the 2 x tiers table of counts, plus the largest share change.
  embedding_drift   the prompts themselves: MMD^2 between two samples of embeddings with an
                    RBF kernel (bandwidth: the median pairwise distance), a permutation
                    p-value, and the cosine distance between the two mean vectors.
  quality_drift     feedback per tier: the change in mean score and a two-sample z-test.
A signal drifts only when the change is both large (beyond a bound) and significant (p <
alpha): with thousands of requests a tiny change is significant, with a handful a large one
is noise. `DriftReport` gathers them. The tests come from `scipy.stats` and
`tierwise.stats`; randomness comes from the caller's `numpy.random.Generator`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.stats import Summary, z_test

Matrix = npt.NDArray[np.float64]


def format_p(p: float) -> str:
    """'p<0.001' or 'p=0.023'."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _verdict(drifted: bool) -> str:
    return "drifted" if drifted else "no drift"


@dataclass(frozen=True, slots=True)
class TierShareDrift:
    """Shares per tier (reference and current, in `tiers` order) and the chi-square test."""

    tiers: tuple[str, ...]
    reference_shares: tuple[float, ...]
    current_shares: tuple[float, ...]
    n_reference: int
    n_current: int
    statistic: float
    dof: int
    p_value: float
    max_change_tier: str
    max_change: float
    drifted: bool

    def describe(self) -> str:
        """e.g. 'strong share 31% -> 58% (+27 pt, p<0.001): drifted'."""
        i = self.tiers.index(self.max_change_tier)
        before, after = self.reference_shares[i], self.current_shares[i]
        return (
            f"{self.max_change_tier} share {before:.0%} -> {after:.0%} "
            f"({100 * self.max_change:+.0f} pt, {format_p(self.p_value)}): "
            f"{_verdict(self.drifted)}"
        )


def tier_share_drift(
    reference: Mapping[str, int],
    current: Mapping[str, int],
    *,
    alpha: float = 0.01,
    min_change: float = 0.05,
) -> TierShareDrift:
    """Compare request counts per tier. Drifted when some tier's share moved by more than
    `min_change` (a fraction: 0.05 is 5 points) and the chi-square test of homogeneity has
    p < alpha. Tiers with no request in either window are left out of the test; with fewer
    than two tiers left, p is 1. Raises ValueError when either window has no request."""
    tiers = tuple(dict.fromkeys([*reference, *current]))
    table = np.array(
        [[reference.get(t, 0) for t in tiers], [current.get(t, 0) for t in tiers]], dtype=float
    )
    if (table < 0).any():
        raise ValueError("tier counts must not be negative")
    totals = table.sum(axis=1)
    if totals.min() <= 0:
        raise ValueError("tier share drift needs at least one request in each window")
    shares = table / totals[:, None]
    change = shares[1] - shares[0]
    worst = int(np.argmax(np.abs(change)))
    statistic, dof, p = _chi_square(table[:, table.sum(axis=0) > 0])
    return TierShareDrift(
        tiers,
        tuple(float(s) for s in shares[0]),
        tuple(float(s) for s in shares[1]),
        int(totals[0]),
        int(totals[1]),
        statistic,
        dof,
        p,
        tiers[worst],
        float(change[worst]),
        bool(abs(change[worst]) > min_change and p < alpha),
    )


def _chi_square(table: Matrix) -> tuple[float, int, float]:
    """Pearson's statistic (no continuity correction), degrees of freedom and p-value
    for a table with no empty column; p is 1 with a single column."""
    from scipy.stats import chi2_contingency

    if table.shape[1] < 2:
        return 0.0, 0, 1.0
    found = chi2_contingency(table, correction=False)
    return float(found.statistic), int(found.dof), float(found.pvalue)


@dataclass(frozen=True, slots=True)
class EmbeddingDrift:
    """MMD^2 (unbiased) of two embedding samples, its permutation p-value, and the cosine
    distance between the sample means."""

    n_reference: int
    n_current: int
    mmd2: float
    bandwidth: float
    p_value: float
    n_permutations: int
    mean_distance: float
    drifted: bool

    def describe(self) -> str:
        return (
            f"prompt embeddings: MMD^2 {self.mmd2:.4f} ({format_p(self.p_value)}), "
            f"mean cosine distance {self.mean_distance:.3f}: {_verdict(self.drifted)}"
        )


def embedding_drift(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    n_permutations: int = 200,
    alpha: float = 0.01,
    min_distance: float = 0.01,
    max_rows: int = 500,
) -> EmbeddingDrift:
    """Two-sample test on embeddings (rows). Samples above `max_rows` are subsampled with
    `rng`. Drifted when the permutation p < alpha and the cosine distance between the two
    mean vectors exceeds `min_distance`. The p-value is (1 + #{permuted >= observed}) /
    (1 + n_permutations): below 1 / alpha - 1 permutations it can never reach alpha."""
    x = _rows(reference, rng, max_rows)
    y = _rows(current, rng, max_rows)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding dimensions differ: {x.shape[1]} and {y.shape[1]}")
    if n_permutations < 1:
        raise ValueError("n_permutations must be at least 1")
    kernel, bandwidth = rbf_kernel(np.vstack([x, y]))
    n, total = len(x), len(x) + len(y)
    observed = np.zeros((total, 1), dtype=bool)
    observed[:n] = True
    permuted = np.zeros((total, n_permutations), dtype=bool)
    for j in range(n_permutations):
        permuted[rng.permutation(total)[:n], j] = True
    mmd2 = float(_mmd2(kernel, observed)[0])
    exceed = int((_mmd2(kernel, permuted) >= mmd2 - 1e-12).sum())
    p = (1 + exceed) / (1 + n_permutations)
    distance = cosine_distance(x.mean(axis=0), y.mean(axis=0))
    drifted = p < alpha and distance > min_distance
    return EmbeddingDrift(n, total - n, mmd2, bandwidth, p, n_permutations, distance, drifted)


def _rows(sample: npt.ArrayLike, rng: np.random.Generator, max_rows: int) -> Matrix:
    rows = np.asarray(sample, dtype=np.float64)
    if rows.ndim != 2 or len(rows) < 2:
        raise ValueError(f"an embedding sample must be at least 2 rows x d, not {rows.shape}")
    if len(rows) > max_rows:
        rows = rows[rng.choice(len(rows), max_rows, replace=False)]
    return rows


def rbf_kernel(z: Matrix) -> tuple[Matrix, float]:
    """exp(-|a - b|^2 / (2 s^2)) over the rows of `z`, with s the median pairwise distance
    (1.0 when that is 0); returns the kernel matrix and s."""
    squared = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(squared[:, None] + squared[None, :] - 2.0 * (z @ z.T), 0.0)
    np.fill_diagonal(d2, 0.0)
    median = float(np.median(d2[np.triu_indices(len(z), 1)]))
    bandwidth = math.sqrt(median) if median > 0 else 1.0
    kernel: Matrix = np.exp(-d2 / (2.0 * bandwidth**2))
    return kernel, bandwidth


def _mmd2(kernel: Matrix, labels: npt.NDArray[np.bool_]) -> Matrix:
    """Unbiased MMD^2 for each column of `labels` (True: first sample, False: second)."""
    x = labels.astype(np.float64)
    y = 1.0 - x
    n, m = x.sum(axis=0), y.sum(axis=0)
    kx, ky = kernel @ x, kernel @ y
    diagonal = np.diag(kernel)
    sxx = (x * kx).sum(axis=0) - diagonal @ x
    syy = (y * ky).sum(axis=0) - diagonal @ y
    sxy = (x * ky).sum(axis=0)
    result: Matrix = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)
    return result


def cosine_distance(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """1 - cos(a, b); 1.0 when either vector is zero."""
    u, v = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = float(np.linalg.norm(u) * np.linalg.norm(v))
    return 1.0 - float(u @ v) / norms if norms > 0 else 1.0


@dataclass(frozen=True, slots=True)
class TierQuality:
    """One tier's feedback before and after: `change` is current - reference mean."""

    tier: str
    reference: Summary
    current: Summary
    change: float
    z: float
    p_value: float
    drifted: bool

    def describe(self) -> str:
        """e.g. 'strong quality 0.82 -> 0.71 (-0.11, p<0.001): drifted'."""
        return (
            f"{self.tier} quality {self.reference.mean:.2f} -> {self.current.mean:.2f} "
            f"({self.change:+.2f}, {format_p(self.p_value)}): {_verdict(self.drifted)}"
        )


@dataclass(frozen=True, slots=True)
class QualityDrift:
    """Per tier present in both windows with at least two scores in each."""

    tiers: tuple[TierQuality, ...]

    @property
    def drifted(self) -> bool:
        return any(t.drifted for t in self.tiers)

    def describe(self) -> list[str]:
        return [t.describe() for t in self.tiers]


def quality_drift(
    reference: Mapping[str, Summary | npt.ArrayLike],
    current: Mapping[str, Summary | npt.ArrayLike],
    *,
    alpha: float = 0.01,
    min_drop: float = 0.05,
) -> QualityDrift:
    """Per tier, the change in mean feedback and a two-sided two-sample z-test (Welch's
    standard error). A tier drifted when its mean dropped by more than `min_drop` and
    p < alpha; a rise is reported but never counts as drift."""
    results: list[TierQuality] = []
    for tier in [t for t in reference if t in current]:
        before, after = _summary(reference[tier]), _summary(current[tier])
        if min(before.n, after.n) < 2:
            continue
        test = z_test(after, before)
        drifted = test.difference < -min_drop and test.p_value < alpha
        results.append(
            TierQuality(tier, before, after, test.difference, test.z, test.p_value, drifted)
        )
    return QualityDrift(tuple(results))


def _summary(value: Summary | npt.ArrayLike) -> Summary:
    return value if isinstance(value, Summary) else Summary.from_values(value)


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The signals that were computed (None: not measured this time)."""

    tier_share: TierShareDrift | None = None
    embedding: EmbeddingDrift | None = None
    quality: QualityDrift | None = None

    @property
    def drifted(self) -> bool:
        signals: Sequence[Any] = (self.tier_share, self.embedding, self.quality)
        return any(s is not None and s.drifted for s in signals)

    def describe(self) -> list[str]:
        """One plain-English line per signal (per tier for quality)."""
        lines: list[str] = []
        if self.tier_share is not None:
            lines.append(self.tier_share.describe())
        if self.embedding is not None:
            lines.append(self.embedding.describe())
        if self.quality is not None:
            lines.extend(self.quality.describe())
        return lines

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready, except that an infinite z stays a float inf)."""
        data = dataclasses.asdict(self)
        data["drifted"] = self.drifted
        return data
