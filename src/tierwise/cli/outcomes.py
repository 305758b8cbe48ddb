"""`tierwise export-outcomes`: the gateway's logged requests as an outcome table."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tierwise.cli.common import ConfigOption, run_with_store

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.store.base import Store

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> float:
    """`7d`, `12h`, `30m`, `90s` or plain seconds, in seconds."""
    match = DURATION.match(text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration such as 7d, 12h or 30m")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def export_outcomes_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Outcome-table CSV to write.")],
    since: Annotated[str, typer.Option(help="How far back: 7d, 12h, 30m.")] = "7d",
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write the logged requests with a captured prompt as an outcome table
    (prompt_id, prompt, source_benchmark = route, score__<model>, cost_usd__<model>),
    readable by `tierwise eval` and `tierwise train`. Scores come from the judge's
    verdicts, feedback, failed checks and escalations (docs/evaluation.md)."""
    from tierwise.learning.from_log import collect, write_csv

    window = parse_duration(since)

    async def work(loaded: GatewayConfig, store: Store) -> str:
        outcomes = await collect(store, time.time() - window, route)
        write_csv(outcomes, out)
        return (
            f"wrote {out}: {len(outcomes.rows)} labelled requests, "
            f"{len(outcomes.models)} models ({', '.join(outcomes.models) or 'none'}); "
            f"{outcomes.unlabelled} requests without a label left out"
        )

    typer.echo(run_with_store(config, work))
