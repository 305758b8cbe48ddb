"""`tierwise report`: the request log summarised as tables or JSON."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from tierwise.observability.figures import Report, Spend


def report_command(
    since: Annotated[
        str, typer.Option(help="Start of the range: 30m, 24h, 7d, 2w or an ISO date (UTC).")
    ] = "7d",
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    failures: Annotated[int, typer.Option(min=0, help="Recent failed requests to list.")] = 10,
    by: Annotated[
        str, typer.Option(help="Group spend by key, team, user, route or model.")
    ] = "route",
    wide: Annotated[
        bool, typer.Option("--wide", help="Every per-group column (needs a wide terminal).")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML config; default: $TIERWISE_CONFIG or embedded."),
    ] = None,
) -> None:
    """Traffic, spend, savings, latency, fallbacks and failures from the request log."""
    from tierwise.cli.common import load_cli_config
    from tierwise.errors import TierwiseError
    from tierwise.observability.report import GROUPINGS, parse_since

    try:
        if by not in GROUPINGS:
            raise ValueError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
        loaded = load_cli_config(config)
        url = loaded.store.resolved_url()
        teams = {k.name: k.team for k in loaded.server.api_keys}
        now = time.time()
        start = parse_since(since, now)
    except (TierwiseError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    report = asyncio.run(_load(url, (start, now), failures, by, teams))
    if json_output:
        typer.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(report, wide=wide)


async def _load(
    url: str, window: tuple[float, float], failures: int, by: str, teams: dict[str, str | None]
) -> Report:
    """The report; requests logged without a team count for their key's team, as the
    config's keys and then the store's virtual keys (revoked ones too) name it."""
    from tierwise.observability.report import summarize
    from tierwise.store import migrated

    async with migrated(url) as store:
        virtual = {k["name"]: k["team"] for k in await store.virtual_keys(revoked=True)}
        known = {**virtual, **teams}
        return await summarize(store, *window, failures=failures, by=(by,), teams=known)


def print_report(report: Report, wide: bool = False, console: Console | None = None) -> None:
    """The report as tables: compact enough for 80 columns, or every per-group
    column with `wide`."""
    from rich.console import Console

    out = console or Console()
    groups = _groups(report) if wide else _compact_groups(report)
    failed = _failures(report) if wide else _compact_failures(report)
    spend = [_spend(by, rows) for by, rows in report.spend.items()]
    for table in (_totals(report), groups, *spend, _triggers(report), failed):
        out.print(table)


def _table(title: str, *columns: str, left: int = 2) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index < left else "right", overflow="fold")
    return table


def _compact_groups(report: Report) -> Table:
    from tierwise.observability.formatting import ms, usd_short

    names = ("route / tier", "requests", "spend", "savings", "p50")
    table = _table("routes and tiers (--wide: every column)", *names, left=1)
    for g in report.groups:
        table.add_row(
            f"{g.route} / {g.tier or '(none)'}",
            str(g.counts.requests),
            usd_short(g.money.spend_usd),
            usd_short(g.money.savings_usd),
            ms(g.latency.p50_ms),
        )
    return table


def _spend(by: str, rows: list[Spend]) -> Table:
    from tierwise.observability.formatting import ms, usd_short

    names = (by, "requests", "spend", "savings", "latency")
    table = _table(f"spend by {by} (latency: mean)", *names, left=1)
    for s in rows:
        table.add_row(
            s.name or "(none)",
            str(s.requests),
            usd_short(s.money.spend_usd),
            usd_short(s.money.savings_usd),
            ms(s.mean_latency_ms),
        )
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


def _compact_failures(report: Report) -> Table:
    names = ("request", "route", "status", "attempts")
    table = _table("recent failed requests (--wide: times and deployments)", *names, left=4)
    for f in report.failures:
        steps = _runs([a.trigger or a.outcome for a in f.attempts])
        table.add_row(f.request_id, f.route, f.status, steps)
    return table


def _runs(steps: list[str]) -> str:
    """`a a a b` as `a x3, b`."""
    runs: list[list[str | int]] = []
    for step in steps:
        if runs and runs[-1][0] == step:
            runs[-1][1] = int(runs[-1][1]) + 1
        else:
            runs.append([step, 1])
    return ", ".join(f"{name} x{n}" if n != 1 else str(name) for name, n in runs)


def _failures(report: Report) -> Table:
    from tierwise.observability.formatting import when

    names = ("time", "request", "route", "status", "attempts")
    table = _table("recent failed requests", *names, left=len(names))
    for f in report.failures:
        steps = " -> ".join(f"{a.deployment}:{a.trigger or a.outcome}" for a in f.attempts)
        table.add_row(when(f.created_at), f.request_id, f.route, f.status, steps)
    return table
