"""Drift detection and threshold recalibration on seeded, planted data."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter

import numpy as np
import pytest

from tierwise.drift.detect import (
    DriftReport,
    Summary,
    embedding_drift,
    quality_drift,
    tier_share_drift,
)
from tierwise.drift.recalibrate import recalibrate_share, replayed_share
from tierwise.learning.models import TrainedRouter, relative_costs
from tierwise.learning.models import choose as choose_model
from tierwise.routing.embedding import choose as choose_tier
from tierwise.routing.embedding import score
from tierwise.routing.embedding_rule import EmbeddingMargin
from tierwise.routing.tuning import LearnedCostWeight, PreferenceThreshold, ReplayRule

Logs = list[dict[str, float]]
Mix = tuple[np.ndarray, dict[str, Logs]]


def _counts(rng: np.random.Generator, shares: list[float], n: int) -> dict[str, int]:
    drawn = rng.multinomial(n, shares)
    return dict(zip(("cheap", "mid", "strong"), drawn.tolist(), strict=True))


def test_tier_share_drift_fires_on_planted_shift() -> None:
    result = tier_share_drift({"cheap": 690, "strong": 310}, {"cheap": 420, "strong": 580})
    assert result.drifted
    assert result.max_change_tier in ("cheap", "strong")
    assert abs(result.max_change) == pytest.approx(0.27)
    assert result.p_value < 1e-30
    line = result.describe()
    assert "69% -> 42% (-27 pt, p<0.001): drifted" in line or "31% -> 58%" in line


def test_tier_share_drift_false_positive_rate_is_at_most_alpha() -> None:
    rng = np.random.default_rng(7)
    runs, shares = 200, [0.5, 0.2, 0.3]
    results = [
        tier_share_drift(_counts(rng, shares, 3000), _counts(rng, shares, 3000))
        for _ in range(runs)
    ]
    assert sum(r.drifted for r in results) / runs <= 0.01
    p_values = np.array([r.p_value for r in results])
    alpha, tolerance = 0.05, 3 * math.sqrt(0.05 * 0.95 / runs)
    assert (p_values < alpha).mean() <= alpha + tolerance
    assert p_values.mean() == pytest.approx(0.5, abs=3 * math.sqrt(1 / 12 / runs))
    shifted = tier_share_drift(
        _counts(rng, [0.5, 0.2, 0.3], 1000), _counts(rng, [0.35, 0.2, 0.45], 800)
    )
    assert shifted.drifted


def test_tier_share_drift_needs_a_large_change() -> None:
    small = tier_share_drift({"cheap": 700_000, "strong": 300_000}, {"cheap": 69, "strong": 31})
    assert not small.drifted
    big_but_few = tier_share_drift({"cheap": 7, "strong": 3}, {"cheap": 4, "strong": 6})
    assert not big_but_few.drifted and big_but_few.p_value > 0.01
    only = tier_share_drift({"cheap": 10}, {"cheap": 12, "strong": 0})
    assert only.p_value == 1.0 and not only.drifted
    with pytest.raises(ValueError, match="at least one request"):
        tier_share_drift({"cheap": 3}, {})


def _mixture(rng: np.random.Generator, n: int, complex_share: float, d: int = 16) -> np.ndarray:
    centres = np.eye(d)[:2] * 3.0
    pick = rng.random(n) < complex_share
    return centres[pick.astype(int)] + rng.normal(size=(n, d))


def test_mmd_same_distribution_rarely_drifts() -> None:
    rng = np.random.default_rng(11)
    runs = 20
    flagged = sum(
        embedding_drift(_mixture(rng, 100, 0.3), _mixture(rng, 100, 0.3), rng).drifted
        for _ in range(runs)
    )
    assert flagged <= 2


def test_mmd_mean_shifted_mixture_drifts() -> None:
    rng = np.random.default_rng(12)
    result = embedding_drift(_mixture(rng, 500, 0.2), _mixture(rng, 500, 0.6), rng)
    assert result.drifted
    assert result.p_value < 0.01 and result.mmd2 > 0 and result.mean_distance > 0.01
    assert result.n_reference == result.n_current == 500
    assert "drifted" in result.describe()
    with pytest.raises(ValueError, match="dimensions"):
        embedding_drift(np.ones((3, 2)), np.ones((3, 4)), rng)


def test_quality_drift_flags_a_significant_drop_only() -> None:
    rng = np.random.default_rng(5)
    reference = {"cheap": rng.normal(0.8, 0.1, 400), "strong": rng.normal(0.9, 0.1, 300)}
    current = {
        "cheap": rng.normal(0.7, 0.1, 400),
        "strong": Summary.from_values(rng.normal(0.95, 0.1, 300)),
    }
    result = quality_drift(reference, current)
    by_tier = {t.tier: t for t in result.tiers}
    assert result.drifted
    assert by_tier["cheap"].drifted and by_tier["cheap"].change == pytest.approx(-0.1, abs=0.03)
    assert not by_tier["strong"].drifted and by_tier["strong"].change > 0
    same = quality_drift({"cheap": rng.normal(0.8, 0.1, 400)}, {"cheap": [0.8] * 3})
    assert not same.drifted
    small = quality_drift({"t": Summary(10_000, 0.8, 0.01)}, {"t": Summary(10_000, 0.78, 0.01)})
    assert small.tiers[0].p_value < 0.01 and not small.drifted


DIMENSION = 16
SIMPLE, COMPLEX = np.eye(DIMENSION)[0], np.eye(DIMENSION)[1]


def _unit(rows: np.ndarray) -> np.ndarray:
    unit: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return unit


EXAMPLES = {
    "cheap": _unit(SIMPLE + np.random.default_rng(1).normal(0, 0.2, (5, DIMENSION))),
    "strong": _unit(COMPLEX + np.random.default_rng(2).normal(0, 0.2, (4, DIMENSION))),
}


def _simulate(rng: np.random.Generator, n: int, complex_share: float) -> Mix:
    """Prompts from two pools as unit vectors, and the scores each router would log for
    them, by parameter: per-tier centroid similarity (the embedding router's `margin`) and
    a `strong_win_rate` (a preference `threshold`)."""
    pick = rng.random(n) < complex_share
    raw = np.where(pick[:, None], COMPLEX, SIMPLE) + rng.normal(0, 0.35, (n, DIMENSION))
    vectors = _unit(raw)
    win_rates = np.clip(rng.normal(np.where(pick, 0.65, 0.4), 0.1), 0, 1)
    return vectors, {
        "margin": [score(v, EXAMPLES, "centroid", 3) for v in vectors],
        "threshold": [{"strong_win_rate": float(w)} for w in win_rates],
    }


def _tier_counts(tunable: ReplayRule, logged: Logs, value: float) -> Counter[str]:
    return Counter(t for t in tunable.replay(logged, value) if t is not None)


@pytest.mark.parametrize(
    ("tunable", "bounds"),
    [
        (PreferenceThreshold(0.5, strong="strong", weak="cheap"), (0.0, 1.0)),
        (EmbeddingMargin(0.1, order=("cheap", "strong")), (-1.0, 1.0)),
    ],
)
def test_planted_drift_is_detected_and_recalibrated(
    tunable: PreferenceThreshold | EmbeddingMargin, bounds: tuple[float, float]
) -> None:
    rng = np.random.default_rng(2024)
    ref_vectors, ref_logs = _simulate(rng, 2000, 0.2)
    reference = ref_logs[tunable.name]
    calibrated = recalibrate_share(tunable, reference, "strong", 0.30, bounds)
    assert calibrated.reachable and calibrated.share_after == pytest.approx(0.30, abs=0.005)
    value = calibrated.new_value
    cur_vectors, cur_logs = _simulate(rng, 2000, 0.6)
    current = cur_logs[tunable.name]
    drifted_share = replayed_share(tunable, current, "strong", value)
    assert drifted_share > 0.40

    report = DriftReport(
        tier_share=tier_share_drift(
            _tier_counts(tunable, reference, value), _tier_counts(tunable, current, value)
        ),
        embedding=embedding_drift(ref_vectors, cur_vectors, rng),
    )
    assert report.drifted and report.tier_share and report.tier_share.drifted
    assert report.embedding and report.embedding.drifted
    assert report.describe()[0].startswith(("strong share 3", "cheap share 7"))
    json.dumps(report.as_dict())

    retuned = dataclasses.replace(tunable, value=value)
    fixed = recalibrate_share(retuned, current, "strong", 0.30, bounds, window="2026-12")
    assert fixed.old_value == value and fixed.share_before == pytest.approx(drifted_share)
    assert fixed.share_after == pytest.approx(0.30, abs=0.02)
    _, holdout = _simulate(rng, 3000, 0.6)
    fresh = replayed_share(tunable, holdout[tunable.name], "strong", fixed.new_value)
    assert fresh == pytest.approx(0.30, abs=0.045)
    evidence = json.loads(json.dumps(fixed.evidence))
    assert evidence["n"] == 2000 and evidence["window"] == "2026-12"
    assert evidence["method"] == ("quantile" if tunable.name == "threshold" else "bisection")


def test_margin_replay_mirrors_the_router_for_three_tiers() -> None:
    rng = np.random.default_rng(3)
    order = ("cheap", "mid", "strong")
    logged = [dict(zip(order, rng.uniform(0, 1, 3).tolist(), strict=True)) for _ in range(300)]
    logged += [{"cheap": 0.2, "strong": 0.3}, {}]
    tunable = EmbeddingMargin(0.0, order, abstain_below=0.3, on_unsure="mid")
    for margin in (-0.2, 0.0, 0.15):
        routed = tunable.replay(logged, margin)
        expected = [choose_tier(s, order, margin, 0.3, "mid")[0] for s in logged[:300]]
        assert routed[:300] == expected
        assert routed[300] == choose_tier(logged[300], ["cheap", "strong"], margin, 0.3, "mid")[0]
        assert routed[301] is None
    shares = [replayed_share(tunable, logged, "strong", m) for m in (-0.3, -0.1, 0.1, 0.3)]
    assert shares == sorted(shares, reverse=True)
    result = recalibrate_share(tunable, logged, "strong", 0.1, (-1.0, 1.0))
    assert result.share_after == pytest.approx(0.1, abs=0.01)
    assert result.evidence["n_skipped"] == 1


def test_cost_weight_replay_mirrors_the_learned_router() -> None:
    rng = np.random.default_rng(4)
    names = ["small", "medium", "large"]
    mean_costs = np.array([0.001, 0.004, 0.02])
    p = rng.uniform(0.2, 0.95, (600, 3))
    router = TrainedRouter(
        predictor=None,  # type: ignore[arg-type]
        models=names,
        mean_scores=p.mean(axis=0),
        mean_costs=mean_costs,
        embedder_name="hashing",
        embedder_dimension=16,
        cost_weight=0.2,
    )
    tiers = {"small": "cheap", "medium": "mid", "large": "strong"}
    tunable = LearnedCostWeight.from_router(router, tiers)
    assert tunable.value == 0.2 and tunable.name == "cost_weight"
    logged = [{f"p:{m}": float(v) for m, v in zip(names, row, strict=True)} for row in p]
    logged[0] = {"p:small": 0.1, "p:large": 0.9, "utility:large": 0.7}
    logged[1] = {}
    relative = relative_costs(mean_costs)
    for weight in (0.0, 0.2, 0.8):
        expected = [tiers[names[i]] for i in choose_model(p[2:], relative, weight)]
        routed = tunable.replay(logged, weight)
        assert routed[2:] == expected and routed[1] is None
        only = np.array([True, False, True])
        assert (
            routed[0]
            == tiers[names[choose_model(np.array([[0.1, 0, 0.9]]), relative, weight, only)[0]]]
        )
    result = recalibrate_share(tunable, logged, "strong", 0.25, (0.0, 2.0))
    assert result.reachable and result.share_after == pytest.approx(0.25, abs=0.01)
    assert result.new_value > 0.0


def test_guard_rails() -> None:
    rng = np.random.default_rng(9)
    logged = [{"strong_win_rate": float(v)} for v in rng.uniform(0.3, 0.7, 500)]
    tunable = PreferenceThreshold(0.5, "strong", "cheap")
    with pytest.raises(ValueError, match="fewer than min_requests 1000"):
        recalibrate_share(tunable, logged, "strong", 0.3, (0.0, 1.0), min_requests=1000)
    with pytest.raises(ValueError, match="replayable requests"):
        recalibrate_share(tunable, [{"other": 1.0}] * 500, "strong", 0.3, (0.0, 1.0))
    with pytest.raises(ValueError, match="target share"):
        recalibrate_share(tunable, logged, "strong", 1.5, (0.0, 1.0))
    with pytest.raises(ValueError, match="bounds"):
        recalibrate_share(tunable, logged, "strong", 0.3, (1.0, 0.0))
    capped = recalibrate_share(tunable, logged, "strong", 0.05, (0.0, 0.6))
    assert not capped.reachable and capped.new_value == 0.6
    assert capped.share_after == pytest.approx(0.25, abs=0.05)
    margin = EmbeddingMargin(0.0, ("cheap", "strong"))
    scores = [{"cheap": float(a), "strong": float(b)} for a, b in rng.uniform(0, 1, (500, 2))]
    stuck = recalibrate_share(margin, scores, "strong", 0.99, (-0.1, 0.1))
    assert not stuck.reachable and stuck.new_value == -0.1
    assert stuck.evidence["reachable"] is False
