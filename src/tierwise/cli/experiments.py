"""`tierwise experiment ...`: status, stop and start from the
store the gateway writes to (any replica picks changes up within its monitor interval)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from tierwise.cli.common import ConfigOption, JsonOption, print_result, run_with_store

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.experiments.state import Action, Experiments
    from tierwise.store.base import Store

experiment_app = typer.Typer(help="A/B experiments of routers: status, stop, start.")
T = TypeVar("T")


async def _experiments(config: GatewayConfig, store: Store) -> Experiments:
    from tierwise.experiments.log import read_events
    from tierwise.experiments.state import Experiments

    experiments = Experiments(config.experiments)
    experiments.reset(await read_events(store))
    return experiments


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

    print_result(run_with_store(config, work), json_output, render)


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

    lines = run_with_store(config, work)
    typer.echo("\n".join(lines) if lines else "no experiments")


def _change(name: str, config: Path | None, action: Action, serving: str | None, why: str) -> None:
    from tierwise.errors import ConfigError
    from tierwise.experiments.log import write_event
    from tierwise.experiments.state import Event

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

    typer.echo(run_with_store(config, work))


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
