"""`tierwise drift ...`: run a drift check now, read the threshold audit log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierwise.cli.common import ConfigOption, JsonOption, print_result, run_with_store

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.store.base import Store

drift_app = typer.Typer(help="Drift checks and the threshold audit log.")


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

    print_result(run_with_store(config, work), json_output, lambda d: "\n".join(_check_lines(d)))


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

    print_result(run_with_store(config, work), json_output, _log_lines)


def _log_lines(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no calibrations"
    return "\n".join(
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['created_at']))}Z {r['route']} "
        f"{r['parameter']} {r['old_value']} -> {r['new_value']} "
        f"{'applied' if r['applied'] else 'proposed'} by {r['actor']}"
        for r in rows
    )
