"""`tierwise report`: the request log summarised as tables or JSON."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

if TYPE_CHECKING:
    from rich.table import Table

    from tierwise.observability.figures import Report


def report_command(
    since: Annotated[
        str, typer.Option(help="Start of the range: 30m, 24h, 7d, 2w or an ISO date (UTC).")
    ] = "7d",
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    failures: Annotated[int, typer.Option(min=0, help="Recent failed requests to list.")] = 10,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML config; default: $TIERWISE_CONFIG or embedded."),
    ] = None,
) -> None:
    """Traffic, spend, savings, latency, fallbacks and failures from the request log."""
    from tierwise.cli.common import load_cli_config
    from tierwise.errors import TierwiseError
    from tierwise.observability.report import parse_since

    try:
        url = load_cli_config(config).store.resolved_url()
        now = time.time()
        start = parse_since(since, now)
    except (TierwiseError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    report = asyncio.run(_load(url, start, now, failures))
    if json_output:
        typer.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(report)


async def _load(url: str, since: float, until: float, failures: int) -> Report:
    from tierwise.observability.report import summarize
    from tierwise.store import migrated

    async with migrated(url) as store:
        return await summarize(store, since, until, failures=failures)


def print_report(report: Report) -> None:
    from rich.console import Console

    console = Console()
    for table in (_totals(report), _groups(report), _triggers(report), _failures(report)):
        console.print(table)


def _table(title: str, *columns: str, left: int = 2) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index < left else "right")
    return table


def _totals(report: Report) -> Table:
    from tierwise.observability.formatting import pct, usd, when

    c, m, s = report.counts, report.money, report.satisfaction
    table = _table(f"{when(report.since)} to {when(report.until)}", "figure", "value")
    rows = [
        ("requests", str(c.requests)),
        ("errors / degraded / cancelled", f"{c.errors} / {c.degraded} / {c.cancelled}"),
        ("spend", usd(m.spend_usd)),
        ("baseline cost", usd(m.baseline_usd)),
        ("savings", f"{usd(m.savings_usd)} ({pct(m.savings_share)})"),
        ("router tax", usd(m.router_usd)),
        ("check cost", usd(m.checks_usd)),
        ("exploration", f"{usd(m.exploration_usd)} ({pct(m.exploration_share)})"),
        ("fallback rate", pct(c.fallbacks / c.requests if c.requests else None)),
        ("escalation rate", pct(c.escalations / c.requests if c.requests else None)),
        ("satisfaction", f"{pct(s.mean)} ({s.count} scores)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _groups(report: Report) -> Table:
    from tierwise.observability.formatting import GROUP_COLUMNS, group_cells

    table = _table("routes and tiers", "route", "tier", *GROUP_COLUMNS)
    for g in report.groups:
        table.add_row(g.route, g.tier or "(none)", *group_cells(g))
    return table


def _triggers(report: Report) -> Table:
    names = ("attempts", "fallbacks", "escalations", "unrecovered")
    table = _table("by trigger", "trigger", *names, left=1)
    for t in report.triggers:
        numbers = (t.attempts, t.fallbacks, t.escalations, t.unrecovered)
        table.add_row(t.trigger, *(str(n) for n in numbers))
    return table


def _failures(report: Report) -> Table:
    from tierwise.observability.formatting import when

    names = ("time", "request", "route", "status", "attempts")
    table = _table("recent failed requests", *names, left=len(names))
    for f in report.failures:
        steps = " -> ".join(f"{a.deployment}:{a.trigger or a.outcome}" for a in f.attempts)
        table.add_row(when(f.created_at), f.request_id, f.route, f.status, steps)
    return table
