"""`tierwise learn`: train a router on a route's own traffic, compare it with the
route's router on held-out logged requests, and propose, apply or test the winner."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierwise.cli.common import (
    ConfigOption,
    JsonOption,
    fail,
    need_extra,
    print_result,
    run_with_store,
)
from tierwise.cli.outcomes import parse_duration

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.store.base import Store


def learn_command(
    route: Annotated[str | None, typer.Option(help="The route to learn on.")] = None,
    since: Annotated[str, typer.Option(help="How far back: 30d, 12h.")] = "30d",
    apply: Annotated[bool, typer.Option("--apply", help="Serve the winner now.")] = False,
    experiment: Annotated[
        bool, typer.Option("--experiment", help="Start an A/B experiment instead.")
    ] = False,
    rollback: Annotated[
        str | None, typer.Option(help="Return this route to its configured router.")
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Run the candidate beside the live router.")
    ] = False,
    shadow_report: Annotated[
        bool, typer.Option("--shadow-report", help="Compare the route's shadow with it.")
    ] = False,
    shadow_stop: Annotated[
        str | None, typer.Option(help="Remove this route's shadow router.")
    ] = None,
    min_labelled: Annotated[int, typer.Option(help="Least labelled requests.")] = 200,
    quality_target: Annotated[
        float, typer.Option(help="Share of the strong model's quality to reach, cheapest.")
    ] = 0.95,
    embedder: Annotated[str, typer.Option(help="hashing, static, minilm or structure.")] = (
        "hashing"
    ),
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Build ROUTE's outcome table from the log, train and tune a router on it,
    compare it with the route's router on held-out requests (replay, 95% intervals)
    and propose the winner in the audit log; --apply also serves it on every
    replica, --experiment starts an A/B experiment with guardrails instead.
    --shadow runs the candidate beside the live router on live traffic (its
    decisions logged, answers untouched), --shadow-report compares the two on the
    shadowed requests, --shadow-stop R removes the shadow."""
    from tierwise.learning.serve import LearnOptions, Mode, learn_route
    from tierwise.learning.serve import rollback as roll_back

    if sum((apply, experiment, shadow, shadow_report, shadow_stop is not None)) > 1:
        raise fail("give one of --apply, --experiment, --shadow, --shadow-report, --shadow-stop")
    if shadow_stop is not None:
        if rollback is not None:
            raise fail("give --rollback R or --shadow-stop R, not both")
        rollback = shadow_stop
    if (route is None) == (rollback is None):
        raise fail("give --route R to learn, or --rollback R")
    if rollback is None:
        need_extra("tierwise learn")
    options = LearnOptions(parse_duration(since), min_labelled, quality_target, embedder)
    mode: Mode = "apply" if apply else "experiment" if experiment else "propose"

    async def work(loaded: GatewayConfig, store: Store) -> dict[str, Any]:
        name = rollback or route or ""
        if name not in loaded.routes:
            raise typer.BadParameter(f"unknown route {name!r}; routes: {sorted(loaded.routes)}")
        if shadow or shadow_report or shadow_stop is not None:
            return await _shadow_work(loaded, store, name, options, shadow, shadow_report)
        if rollback is not None:
            return await roll_back(loaded, store, rollback, time.time(), actor="cli")
        try:
            return await learn_route(loaded, store, name, time.time(), options, mode, "cli")
        except ValueError as exc:
            raise fail(str(exc)) from None

    print_result(run_with_store(config, work), json_output, describe)


async def _shadow_work(
    config: GatewayConfig,
    store: Store,
    route: str,
    options: Any,
    start: bool,
    report: bool,
) -> dict[str, Any]:
    from tierwise.learning.shadow import start_shadow, stop_shadow
    from tierwise.learning.shadow_report import shadow_report

    now = time.time()
    if report:
        return await shadow_report(config, store, route, now - options.since_s)
    if not start:
        return await stop_shadow(store, route, now, actor="cli")
    try:
        return await start_shadow(config, store, route, now, options, actor="cli")
    except ValueError as exc:
        raise fail(str(exc)) from None


def _pct(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1%}"


def _usd(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"${value:.6f}"


def _range(pair: list[float], fmt: Any) -> str:
    return f"{fmt(pair[0])} .. {fmt(pair[1])}"


def describe(result: dict[str, Any]) -> str:
    """What `learn` did, the comparison first."""
    if "agreement" in result:
        return describe_report(result)
    lines = [
        f"route {result['route']}: {result['status']}"
        + (
            f" ({result['labelled']} labelled requests, {result['needed']} needed)"
            if "labelled" in result
            else ""
        )
    ]
    c = result.get("comparison")
    if c:
        ci = c["intervals"]
        lines += [
            f"held-out logged requests: {c['held_out']} (trained on {c.get('trained_on', '-')})",
            "| router | quality (95% CI) | cost per request | matched |",
            "| --- | --- | --- | --- |",
            f"| candidate | {_pct(c['candidate']['quality'])} ({_range(ci['candidate'], _pct)}) "
            f"| {_usd(c['candidate']['cost_usd'])} | {c['candidate']['matched']} |",
            f"| current | {_pct(c['current']['quality'])} ({_range(ci['current'], _pct)}) "
            f"| {_usd(c['current']['cost_usd'])} | {c['current']['matched']} |",
            f"quality difference 95% CI {_range(ci['quality_diff'], _pct)}, cost difference "
            f"95% CI {_range(ci['cost_diff'], _usd)}",
        ]
    for key in ("router_id", "calibration_id", "experiment", "why"):
        if result.get(key):
            lines.append(f"{key.replace('_', ' ')}: {result[key]}")
    return "\n".join(lines)


def describe_report(result: dict[str, Any]) -> str:
    """A shadow report: agreement, then the replay comparison on labelled requests."""
    a = result["agreement"]
    lines = [
        f"route {result['route']}: shadow router {result['router_id']}",
        f"agreement with the live router: {_pct(a['rate'])} "
        f"(95% Wilson CI {_range(a['interval'], _pct)}) on {a['requests']} requests "
        f"({a['agree']} agreed)",
        f"labelled shadowed requests used for cost and quality: {result['labelled']}",
    ]
    c = result.get("comparison")
    if not c:
        return "\n".join([*lines, f"why: {result['why']}"])
    ci = c["intervals"]
    diff_q = c["candidate"]["quality"] - c["current"]["quality"]
    diff_c = c["candidate"]["cost_usd"] - c["current"]["cost_usd"]
    lines += [
        f"replay on {c['held_out']} shadowed requests with a known routing decision:",
        "| router | quality (95% CI) | cost per request | matched |",
        "| --- | --- | --- | --- |",
        f"| shadow | {_pct(c['candidate']['quality'])} ({_range(ci['candidate'], _pct)}) "
        f"| {_usd(c['candidate']['cost_usd'])} | {c['candidate']['matched']} |",
        f"| live | {_pct(c['current']['quality'])} ({_range(ci['current'], _pct)}) "
        f"| {_usd(c['current']['cost_usd'])} | {c['current']['matched']} |",
        f"shadow minus live: quality {diff_q:+.1%} (95% CI {_range(ci['quality_diff'], _pct)}), "
        f"cost {_usd(diff_c)} per request (95% CI {_range(ci['cost_diff'], _usd)})",
    ]
    return "\n".join(lines)
