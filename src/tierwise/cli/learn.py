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
    replica, --experiment starts an A/B experiment with guardrails instead."""
    from tierwise.learning.serve import LearnOptions, Mode, learn_route
    from tierwise.learning.serve import rollback as roll_back

    if apply and experiment:
        raise fail("give --apply or --experiment, not both")
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
        if rollback is not None:
            return await roll_back(loaded, store, rollback, time.time(), actor="cli")
        try:
            return await learn_route(loaded, store, name, time.time(), options, mode, "cli")
        except ValueError as exc:
            raise fail(str(exc)) from None

    print_result(run_with_store(config, work), json_output, describe)


def _pct(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1%}"


def _usd(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"${value:.6f}"


def _range(pair: list[float], fmt: Any) -> str:
    return f"{fmt(pair[0])} .. {fmt(pair[1])}"


def describe(result: dict[str, Any]) -> str:
    """What `learn` did, the comparison first."""
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
            f"held-out logged requests: {c['held_out']} (trained on {c['trained_on']})",
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
