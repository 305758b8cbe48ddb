"""An experiment's numbers: per variant, and each variant against the control with
always-valid intervals, guardrail verdicts and sample-size guidance."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierwise import stats as shared
from tierwise.experiments import stats
from tierwise.experiments.log import (
    Moments,
    VariantData,
    metric_moments,
    unit_values,
    variant_data,
)
from tierwise.experiments.spec import HIGHER_IS_BETTER, ExperimentConfig, GuardrailConfig
from tierwise.experiments.state import ExperimentState
from tierwise.store.base import Store

if TYPE_CHECKING:
    from numpy.random import Generator

RELATIVE = ("cost", "latency")
UNITS = {"user": "users", "session": "sessions", "api_key": "API keys", "request": "requests"}


@dataclass(frozen=True, slots=True)
class Verdict:
    variant: str
    guardrail: GuardrailConfig
    decision: str
    result: stats.SequentialResult

    def reason(self) -> str:
        return (
            f"guardrail {self.guardrail.metric} (max drop {self.guardrail.max_drop:g}) "
            f"fired for {self.variant}: difference {self.result.estimate:+.4g} "
            f"[{self.result.lower:.4g}, {self.result.upper:.4g}]"
        )


def summary_of(m: Moments) -> shared.Summary:
    return shared.Summary.from_clusters(m.k, m.s, m.c, m.s2, m.c2, m.sc)


def summaries(data: VariantData) -> dict[str, shared.Summary]:
    return {
        "cost": summary_of(data.cost),
        "latency": summary_of(data.latency),
        "error_rate": summary_of(data.errors),
        "satisfaction": summary_of(data.satisfaction),
        "judge": summary_of(data.judge),
    }


def tau2(config: ExperimentConfig, metric: str, control: shared.Summary) -> float:
    """The mixing variance: the minimum effect, relative to the control's mean for
    cost and latency."""
    effect = config.min_effect
    if metric in RELATIVE and control.mean > 0:
        effect *= control.mean
    return stats.tau2_for_effect(effect if effect > 0 else config.min_effect)


def compare(
    config: ExperimentConfig, treatment: shared.Summary, control: shared.Summary, metric: str
) -> stats.SequentialResult:
    return stats.sequential_test(
        treatment, control, tau2=tau2(config, metric, control), alpha=config.alpha
    )


def verdicts(
    config: ExperimentConfig, per_variant: Mapping[str, Mapping[str, shared.Summary]]
) -> list[Verdict]:
    """Every guardrail of every non-control variant with enough samples; `per_variant`
    holds each variant's summary of (at least) the guardrails' metrics."""
    if config.control not in per_variant:
        return []
    control = per_variant[config.control]
    out = []
    for variant in (v for v in config.variants if v != config.control and v in per_variant):
        mine = per_variant[variant]
        for rail in config.guardrails:
            t, c = mine[rail.metric], control[rail.metric]
            if min(t.n, c.n) < rail.min_samples:
                continue
            result = stats.sequential_test(
                t, c, tau2=tau2(config, rail.metric, c), alpha=rail.alpha
            )
            higher = HIGHER_IS_BETTER[rail.metric]
            guard = stats.Guardrail(
                rail.metric,
                "higher_is_better" if higher else "lower_is_better",
                rail.max_drop,
                rail.alpha,
            )
            out.append(Verdict(variant, rail, stats.decide_guardrail(guard, result), result))
    return out


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _variant_json(data: VariantData) -> dict[str, Any]:
    n = data.requests
    return {
        "requests": n,
        "cost_per_request_usd": _num(data.cost.mean),
        "baseline_per_request_usd": _num(data.baseline_usd / n) if n else None,
        "latency_ms_mean": _num(data.latency.mean),
        "error_rate": _num(data.errors.mean),
        "fallback_rate": data.fallbacks / n if n else None,
        "escalation_rate": data.escalations / n if n else None,
        "satisfaction": {
            "n": data.satisfaction.n,
            "units": data.satisfaction.k,
            "mean": _num(data.satisfaction.mean),
        },
        "judge": {
            "n": data.judge.n,
            "mean": _num(data.judge.mean),
            "cost_usd": data.judge_cost_usd,
        },
    }


def _interval(i: shared.Interval | stats.SequentialResult) -> dict[str, float | None]:
    return {"estimate": _num(i.estimate), "lower": _num(i.lower), "upper": _num(i.upper)}


def _metric_json(
    config: ExperimentConfig, t: shared.Summary, c: shared.Summary, metric: str
) -> dict[str, Any]:
    result = compare(config, t, c, metric)
    fixed = shared.diff_ci(t, c, alpha=config.alpha)
    mde = stats.minimum_detectable_effect(t, c, alpha=config.alpha)
    out: dict[str, Any] = {
        "n": [t.n, c.n],
        **_interval(result),
        "p_value": result.p_value,
        "significant": result.significant,
        "fixed_horizon": _interval(fixed),
        "mde": _num(mde),
    }
    if metric in ("satisfaction", "judge") and t.n >= 2 and c.n >= 2:
        variance = max(t.variance, c.variance, 1e-9)
        need = stats.sequential_sample_size_per_arm(
            config.min_effect, variance, variance, tau2=tau2(config, metric, c), alpha=config.alpha
        )
        units = (
            f"{UNITS[config.unit]} with {'feedback' if metric == 'satisfaction' else 'verdicts'}"
        )
        out["guidance"] = stats.format_sample_guidance(
            config.min_effect, need, min(t.n, c.n), unit=units
        )
    return out


def comparison(config: ExperimentConfig, variant: str, data: dict[str, VariantData]) -> Any:
    mine, control = summaries(data[variant]), summaries(data[config.control])
    savings = shared.savings_ci(mine["cost"], control["cost"], alpha=config.alpha)
    metrics = {m: _metric_json(config, mine[m], control[m], m) for m in mine}
    sat = compare(config, mine["satisfaction"], control["satisfaction"], "satisfaction")
    return {
        "variant": variant,
        "control": config.control,
        "savings": _interval(savings),
        "metrics": metrics,
        "summary": stats.describe(savings, sat, variant=variant),
    }


def report(state: ExperimentState, data: dict[str, VariantData]) -> dict[str, Any]:
    """The status of one experiment as plain data (the admin API and the CLI)."""
    config = state.config
    others = [v for v in config.variants if v != config.control and v in data]
    ready = config.control in data
    return {
        **state.overview(),
        "control": config.control,
        "variants": {name: _variant_json(d) for name, d in data.items()},
        "comparisons": [comparison(config, v, data) for v in others] if ready else [],
        "guardrails": [
            {"variant": v.variant, "metric": v.guardrail.metric, "decision": v.decision}
            for v in verdicts(config, {name: summaries(d) for name, d in data.items()})
        ],
    }


async def guardrail_verdicts(store: Store, config: ExperimentConfig, name: str) -> list[Verdict]:
    """The verdicts, reading only the guardrails' metrics (nothing without guardrails)."""
    per_metric: dict[str, dict[str, Moments]] = {
        g.metric: await metric_moments(store, name, g.metric) for g in config.guardrails
    }
    variants = {v for moments in per_metric.values() for v in moments}
    per_variant = {
        v: {m: summary_of(moments.get(v, Moments())) for m, moments in per_metric.items()}
        for v in variants
    }
    return verdicts(config, per_variant)


async def experiment_report(
    store: Store, state: ExperimentState, now: float, bootstrap: int = 0, seed: int = 0
) -> dict[str, Any]:
    """The report; with `bootstrap` resamples, percentile intervals of the savings and
    the satisfaction difference from the raw per-request values as well."""
    data = await variant_data(store, state.name)
    out = {**report(state, data), "as_of": now}
    if bootstrap > 0:
        raw = {m: await unit_values(store, state.name, m) for m in ("cost", "satisfaction")}
        import numpy as np

        rng = np.random.default_rng(seed)
        for c in out["comparisons"]:
            c["bootstrap"] = _bootstrap(raw, c["variant"], state.config, rng, bootstrap)
    return out


def _bootstrap(
    raw: dict[str, dict[str, tuple[list[float], list[float]]]],
    variant: str,
    config: ExperimentConfig,
    rng: Generator,
    resamples: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {"resamples": resamples}
    for metric in ("cost", "satisfaction"):
        mine, control = raw[metric].get(variant), raw[metric].get(config.control)
        if not mine or not control or min(len(mine[0]), len(control[0])) < 2:
            continue
        found = shared.bootstrap_ci(
            mine[0],
            control[0],
            rng,
            resamples=resamples,
            alpha=config.alpha,
            counts=(mine[1], control[1]),
        )
        key = "savings" if metric == "cost" else "satisfaction"
        out[key] = _interval(found.relative.negated() if metric == "cost" else found.difference)
    return out


def render(report_data: dict[str, Any]) -> str:
    """Plain text for `tierwise experiment status`."""
    lines = [
        f"experiment {report_data['name']} on route {report_data['route']}: "
        f"{report_data['status']}"
        + (f", serving {report_data['serving']}" if report_data["serving"] else "")
        + (f" ({report_data['reason']})" if report_data["reason"] else ""),
    ]
    for name, v in report_data["variants"].items():
        cost = v["cost_per_request_usd"]
        sat = v["satisfaction"]
        lines.append(
            f"  {name}: {v['requests']} requests, "
            + (f"${cost:.6f}/request" if cost is not None else "cost n/a")
            + f", satisfaction {_pct(sat['mean'])} (n={sat['n']})"
            + f", escalations {_pct(v['escalation_rate'])}, errors {_pct(v['error_rate'])}"
        )
    for c in report_data["comparisons"]:
        lines.append(f"  {c['summary']}")
        if "bootstrap" in c:
            lines.append(f"    {_bootstrap_line(c['bootstrap'])}")
        guidance = c["metrics"]["satisfaction"].get("guidance")
        if guidance:
            lines.append(f"    {c['variant']} {guidance}")
    for g in report_data["guardrails"]:
        lines.append(f"  guardrail {g['metric']} for {g['variant']}: {g['decision']}")
    return "\n".join(lines)


def _bootstrap_line(found: dict[str, Any]) -> str:
    parts = [f"bootstrap ({found['resamples']} resamples):"]
    if "savings" in found:
        s = found["savings"]
        parts.append(f"savings {_pct(s['lower'])} .. {_pct(s['upper'])}")
    if "satisfaction" in found:
        d = found["satisfaction"]
        parts.append(f"satisfaction {_pt(d['lower'])} .. {_pt(d['upper'])} pt")
    return " ".join(parts)


def _pt(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"
