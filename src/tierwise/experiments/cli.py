"""`tierwise experiment ...` and `tierwise drift ...`: status, stop and start from the
store the gateway writes to (any replica picks changes up within its monitor interval)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.experiments.registry import Action, Experiments
    from tierwise.store.base import Store

experiment_app = typer.Typer(help="A/B experiments of routers: status, stop, start.")
drift_app = typer.Typer(help="Drift checks and the threshold audit log.")
T = TypeVar("T")
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config; default: $TIERWISE_CONFIG or embedded."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _run(config: Path | None, work: Callable[[GatewayConfig, Store], Awaitable[T]]) -> T:
    from tierwise.cli import _config
    from tierwise.errors import TierwiseError
    from tierwise.store import migrated

    try:
        loaded = _config(config)
    except TierwiseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None

    async def go() -> T:
        async with migrated(loaded.store.resolved_url()) as store:
            return await work(loaded, store)

    try:
        return asyncio.run(go())
    except TierwiseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


async def _experiments(config: GatewayConfig, store: Store) -> Experiments:
    from tierwise.experiments.log import read_events
    from tierwise.experiments.registry import Experiments

    experiments = Experiments(config.experiments)
    experiments.reset(await read_events(store))
    return experiments


def _print(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(text(data))


@experiment_app.command("status")
def status(
    name: str,
    config: ConfigOption = None,
    json_output: JsonOption = False,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Also bootstrap intervals with this many resamples.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Per variant: requests, cost, satisfaction; each against the control with
    always-valid intervals; guardrail verdicts."""
    from tierwise.experiments.status import experiment_report, render

    async def work(loaded: GatewayConfig, store: Store) -> dict[str, Any]:
        state = (await _experiments(loaded, store)).get(name)
        return await experiment_report(store, state, time.time(), bootstrap, seed)

    _print(_run(config, work), json_output, render)


@experiment_app.command("list")
def list_experiments(config: ConfigOption = None) -> None:
    """Every experiment and its state."""

    async def work(loaded: GatewayConfig, store: Store) -> list[str]:
        states = (await _experiments(loaded, store)).states()
        return [
            f"{s.name}\t{s.config.route}\t{s.status}"
            + (f"\tserving {s.serving}" if s.serving else "")
            + (f"\t{s.reason}" if s.reason else "")
            for s in states
        ]

    lines = _run(config, work)
    typer.echo("\n".join(lines) if lines else "no experiments")


def _change(name: str, config: Path | None, action: Action, serving: str | None, why: str) -> None:
    from tierwise.errors import ConfigError
    from tierwise.experiments.log import write_event
    from tierwise.experiments.registry import Event

    async def work(loaded: GatewayConfig, store: Store) -> str:
        experiments = await _experiments(loaded, store)
        state = experiments.get(name)
        problem = experiments.conflict(name, state.config.route) if action == "start" else None
        if problem is not None:
            raise ConfigError(problem, key="experiments")
        if serving is not None and serving not in state.config.variants:
            raise typer.BadParameter(f"--serving must be one of {sorted(state.config.variants)}")
        chosen = serving or (state.config.control if action == "stop" else None)
        event = Event(name, time.time(), action, None, chosen, why, "cli")
        await write_event(store, event)
        return f"{name}: {action}" + (f", serving {chosen}" if chosen else "")

    typer.echo(_run(config, work))


@experiment_app.command("stop")
def stop(
    name: str,
    serving: Annotated[
        str | None, typer.Option(help="Variant everyone gets from now on (default: control).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "stopped from the CLI",
    config: ConfigOption = None,
) -> None:
    """Stop NAME: every request gets one variant from now on."""
    _change(name, config, "stop", serving, reason)


@experiment_app.command("start")
def start(name: str, config: ConfigOption = None) -> None:
    """Start (or restart) NAME."""
    _change(name, config, "start", None, "started from the CLI")


@drift_app.command("check")
def check(route: str, config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Run one drift check of ROUTE now and print what it found."""
    from tierwise.drift.monitor import check_route
    from tierwise.gateway import Gateway

    async def work(loaded: GatewayConfig, store: Store) -> dict[str, Any]:
        if route not in loaded.drift.routes:
            raise typer.BadParameter(f"route {route!r} has no drift.routes entry")
        async with Gateway(loaded) as gateway:
            return await check_route(gateway, store, route, time.time(), actor="cli")

    _print(_run(config, work), json_output, lambda d: "\n".join(_check_lines(d)))


def _check_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"route {result['route']}: {result['status']}"]
    lines += [f"  {line}" for line in result.get("signals", [])]
    if "strong_share" in result:
        lines.append(
            f"  strong share {result['strong_share']:.1%} (target {result['target_share']:.1%})"
        )
    if "calibration" in result:
        c = result["calibration"]
        lines.append(
            f"  {c['parameter']}: {c['old_value']:.4g} -> {c['new_value']:.4g} "
            f"(replayed strong share {c['share_before']:.1%} -> {c['share_after']:.1%})"
        )
    if "why" in result:
        lines.append(f"  {result['why']}")
    return lines


@drift_app.command("log")
def audit_log(
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """The threshold audit log, newest first."""
    from tierwise.drift.audit import read_calibrations

    async def work(loaded: GatewayConfig, store: Store) -> list[dict[str, Any]]:
        return await read_calibrations(store, route)

    _print(_run(config, work), json_output, _log_lines)


def _log_lines(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no calibrations"
    return "\n".join(
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['created_at']))}Z {r['route']} "
        f"{r['parameter']} {r['old_value']} -> {r['new_value']} "
        f"{'applied' if r['applied'] else 'proposed'} by {r['actor']}"
        for r in rows
    )
