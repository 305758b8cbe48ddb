"""Statistics for A/B experiments of routers: an always-valid test, guardrails, power
and sample sizes, and the plain-English summary. Summaries, fixed-horizon intervals and
the bootstrap are shared with drift in `tierwise.stats`.

Every difference is treatment minus control, every alpha two-sided. A satisfaction
score lives in [0, 1] and is reported in percentage points. Functions are pure.

The sequential test is the normal-mixture mSPRT (Johari, Pekelis & Walsh 2017,
"Always valid inference"; Howard et al. 2021): with estimate d, its variance
v = s_t^2/n_t + s_c^2/n_c and mixing variance tau^2, the likelihood ratio is
sqrt(v/(v+tau^2)) * exp(tau^2 d^2 / (2 v (v+tau^2))) and the confidence sequence is
d +/- sqrt(v (v+tau^2)/tau^2 * (ln((v+tau^2)/v) + 2 ln(1/alpha))). It covers the
true difference at every look at once, so peeking after each batch is safe. The
sample variances are plugged in for the true ones, so the guarantee is asymptotic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from tierwise.stats import Interval, Summary, check_levels, normal_quantile

Direction = Literal["higher_is_better", "lower_is_better"]
Decision = Literal["fire", "safe", "continue"]

_MAX_LOG = 700.0


def _check_tau2(tau2: float) -> None:
    if not tau2 > 0:
        raise ValueError(f"tau2 must be > 0, got {tau2}")


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """One look of the always-valid test of mean_t - mean_c.

    [lower, upper] is a confidence sequence: with probability >= 1 - alpha it covers
    the true difference at every look at once. `p_value` is this look's; keep the
    running minimum over looks with running_p_value.
    """

    estimate: float
    lower: float
    upper: float
    p_value: float
    significant: bool
    alpha: float

    @property
    def half_width(self) -> float:
        return (self.upper - self.lower) / 2


def tau2_for_effect(min_effect: float) -> float:
    """Mixing variance tuned to the smallest effect worth detecting: min_effect ** 2.

    The mixture spends its power near effects of size tau; the width depends on tau^2
    only through a logarithm, so a rough minimum effect of interest is enough.
    """
    if not min_effect > 0:
        raise ValueError(f"min_effect must be > 0, got {min_effect}")
    return float(min_effect) ** 2


def confidence_sequence_half_width(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence at estimate variance v."""
    total = variance + tau2
    bound = math.log(total / variance) + 2 * math.log(1 / alpha)
    return math.sqrt(variance * total / tau2 * bound)


def log_mixture_likelihood_ratio(estimate: float, variance: float, tau2: float) -> float:
    """Log of the normal-mixture likelihood ratio of 'difference != 0' against 0."""
    total = variance + tau2
    return 0.5 * math.log(variance / total) + tau2 * estimate**2 / (2 * variance * total)


def mixture_likelihood_ratio(estimate: float, variance: float, tau2: float) -> float:
    """Normal-mixture likelihood ratio (inf when it overflows a float)."""
    log_lr = log_mixture_likelihood_ratio(estimate, variance, tau2)
    return math.inf if log_lr > _MAX_LOG else math.exp(log_lr)


def sequential_test(
    treatment: Summary, control: Summary, *, tau2: float, alpha: float = 0.05
) -> SequentialResult:
    """Always-valid test and confidence sequence for mean_t - mean_c at this look.

    Needs a positive, known variance in at least one arm; otherwise the result is
    uninformative (infinite bounds, p = 1).
    """
    check_levels(alpha=alpha)
    _check_tau2(tau2)
    estimate = treatment.mean - control.mean
    variance = treatment.variance_of_mean + control.variance_of_mean
    if not (variance > 0 and math.isfinite(variance) and math.isfinite(estimate)):
        return SequentialResult(estimate, -math.inf, math.inf, 1.0, False, alpha)
    half = confidence_sequence_half_width(variance, tau2, alpha)
    log_lr = log_mixture_likelihood_ratio(estimate, variance, tau2)
    p_value = math.exp(min(0.0, -log_lr))
    return SequentialResult(
        estimate, estimate - half, estimate + half, p_value, p_value <= alpha, alpha
    )


def running_p_value(previous: float | None, current: float) -> float:
    """Running minimum of always-valid p-values over looks (None before the first)."""
    return current if previous is None else min(previous, current)


@dataclass(frozen=True, slots=True)
class Guardrail:
    """A metric the treatment may not worsen by more than max_drop (in its own units)."""

    metric: str
    direction: Direction
    max_drop: float
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.direction not in ("higher_is_better", "lower_is_better"):
            raise ValueError(f"unknown direction {self.direction!r}")
        if not self.max_drop >= 0:
            raise ValueError(f"max_drop must be >= 0, got {self.max_drop}")
        check_levels(alpha=self.alpha)


def decide_guardrail(guardrail: Guardrail, result: SequentialResult) -> Decision:
    """'fire' when treatment is confidently worse than control by more than max_drop,
    'safe' when it is confidently not, else 'continue'.

    `result` must come from sequential_test at the guardrail's alpha.
    """
    if result.alpha != guardrail.alpha:
        raise ValueError(f"result alpha {result.alpha} != guardrail alpha {guardrail.alpha}")
    limit = guardrail.max_drop
    if guardrail.direction == "higher_is_better":
        worse, within = result.upper < -limit, result.lower > -limit
    else:
        worse, within = result.lower > limit, result.upper < limit
    if worse:
        return "fire"
    return "safe" if within else "continue"


def check_guardrail(
    guardrail: Guardrail, treatment: Summary, control: Summary, *, tau2: float
) -> Decision:
    """Run the sequential test at the guardrail's alpha and decide."""
    result = sequential_test(treatment, control, tau2=tau2, alpha=guardrail.alpha)
    return decide_guardrail(guardrail, result)


def minimum_detectable_effect(
    treatment: Summary, control: Summary, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest |mean_t - mean_c| a two-sided fixed-horizon test at alpha detects with
    probability `power`, at the arms' current sizes and variances."""
    check_levels(alpha=alpha, power=power)
    spread = math.sqrt(treatment.variance_of_mean + control.variance_of_mean)
    return (normal_quantile(1 - alpha / 2) + normal_quantile(power)) * spread


def _sizing_variance(delta: float, variance_treatment: float, variance_control: float) -> float:
    """Validate a sizing question; return the summed per-observation variance."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    for variance in (variance_treatment, variance_control):
        if not (variance >= 0 and math.isfinite(variance)):
            raise ValueError(f"variances must be finite and >= 0, got {variance}")
    return variance_treatment + variance_control


def sample_size_per_arm(
    delta: float,
    variance_treatment: float,
    variance_control: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Observations per arm (equal arms) for a two-sided fixed-horizon test to detect delta."""
    check_levels(alpha=alpha, power=power)
    total = _sizing_variance(delta, variance_treatment, variance_control)
    z = normal_quantile(1 - alpha / 2) + normal_quantile(power)
    exact = z * z * total / delta**2
    return max(1, math.ceil(exact * (1 - 1e-12)))


def sequential_sample_size_per_arm(
    delta: float,
    variance_treatment: float,
    variance_control: float,
    *,
    tau2: float,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Observations per arm for the confidence sequence to exclude zero with probability
    `power` when the true difference is delta (larger than sample_size_per_arm)."""
    check_levels(alpha=alpha, power=power)
    _check_tau2(tau2)
    total = _sizing_variance(delta, variance_treatment, variance_control)
    if total == 0:
        return 1
    z_power = normal_quantile(power)

    def detects(n: int) -> bool:
        v = total / n
        return confidence_sequence_half_width(v, tau2, alpha) + z_power * math.sqrt(v) <= delta

    high = 1
    while not detects(high):
        high *= 2
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if detects(mid) else (mid, high)
    return high


def _round_up_3_digits(count: int) -> int:
    """Round up to three significant digits: 1837 -> 1840."""
    step = int("1" + "0" * max(0, len(str(count)) - 3))
    return -(-count // step) * step


def _points(delta: float) -> str:
    return f"{round(delta * 100, 1):g}"


def _article(number: str) -> str:
    whole = number.partition(".")[0]
    return "an" if number.startswith("8") or whole in ("11", "18") else "a"


def format_sample_guidance(
    delta: float,
    needed_per_arm: int,
    current_per_arm: int,
    *,
    unit: str = "requests with feedback",
    change: str = "drop",
) -> str:
    """E.g. "needs ~1,840 more requests with feedback per variant to detect a 2-point drop".

    delta is on a [0, 1] scale and shown in percentage points.
    """
    points = _points(delta)
    effect = f"{_article(points)} {points}-point {change}"
    more = needed_per_arm - current_per_arm
    if more <= 0:
        return f"has enough {unit} per variant to detect {effect}"
    return f"needs ~{_round_up_3_digits(more):,} more {unit} per variant to detect {effect}"


def _plus_minus(half_width: float, digits: int) -> str:
    return f"{half_width:.{digits}f}" if math.isfinite(half_width) else "?"


def _describe_shift(result: Interval | SequentialResult) -> str:
    if not math.isfinite(result.estimate):
        return "unknown"
    shift = round(result.estimate * 100, 1) + 0.0
    return f"{shift:+.1f} pt +/- {_plus_minus(result.half_width * 100, 1)} pt"


def _describe_cost(savings: Interval, variant: str) -> str:
    if not math.isfinite(savings.estimate):
        return f"{variant} savings unknown"
    pct = round(savings.estimate * 100)
    half = _plus_minus(savings.half_width * 100, 0)
    if pct >= 0:
        return f"{variant} saves {pct}% +/- {half}%"
    return f"{variant} costs {-pct}% more +/- {half}%"


def describe(
    savings: Interval, satisfaction: Interval | SequentialResult, *, variant: str = "routed"
) -> str:
    """E.g. "routed saves 61% +/- 4%, satisfaction -0.8 pt +/- 1.1 pt, not significant".

    savings is 1 - cost_t / cost_c; satisfaction is the treatment-minus-control
    difference of a [0, 1] score, shown in percentage points. The verdict is about
    satisfaction: a SequentialResult's own flag, else whether the interval excludes 0.
    """
    cost = _describe_cost(savings, variant)
    if isinstance(satisfaction, SequentialResult):
        significant = satisfaction.significant
    else:
        significant = satisfaction.excludes(0.0)
    verdict = "significant" if significant else "not significant"
    return f"{cost}, satisfaction {_describe_shift(satisfaction)}, {verdict}"
