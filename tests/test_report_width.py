"""`tierwise report` at 80 columns: real traffic with faults goes through the
gateway, and the default tables fit without cutting a cell short, with money in
plain notation; `--wide` keeps every per-group column."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tests.helpers import FALLBACK, ROUTES, gateway_config, gateway_data, send_traffic, settle
from tierwise.cli.report import report_command
from tierwise.observability.formatting import GROUP_COLUMNS, usd_short
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

LONG_ROUTE = "customer-support-escalations"
SCIENTIFIC = re.compile(r"(?<![\w.-])[$]?\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.-])")


@pytest.fixture
async def logged(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Path]:
    """A config file whose request log holds the shared traffic plus a request
    on a long route name."""
    data = _data(upstream.base_url, tmp_path)
    async with running(gateway_config(upstream.base_url, **data)) as live:
        sent = await send_traffic(live.base_url)
        await _long_route_request(live)
        await settle(live, len(sent.rows) + 1)
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(gateway_data(upstream.base_url, **data)))
    yield path


def _data(base_url: str, tmp_path: Path) -> dict[str, Any]:
    routes = {**ROUTES, LONG_ROUTE: {"router": {"kind": "fixed"}, "baseline": "big"}}
    store = {"url": f"sqlite:///{tmp_path / 'width.db'}", "capture_prompts": True}
    return {"store": store, "routes": routes, "fallback": FALLBACK}


async def _long_route_request(live: Running) -> None:
    import openai

    async with openai.AsyncOpenAI(
        base_url=live.base_url + "/v1", api_key="x", max_retries=0
    ) as client:
        await client.chat.completions.create(
            model=LONG_ROUTE, messages=[{"role": "user", "content": "hello"}]
        )


async def _report(config: Path, columns: int, *args: str) -> str:
    app = typer.Typer()
    app.command()(report_command)
    runner = CliRunner()
    env = {"COLUMNS": str(columns), "TERM": "dumb"}
    result = await asyncio.to_thread(
        runner.invoke, app, ["--since", "1h", "-c", str(config), *args], env=env
    )
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_the_default_report_fits_80_columns(logged: Path) -> None:
    text = await _report(logged, 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    assert not SCIENTIFIC.search(text), "money in scientific notation"
    assert LONG_ROUTE in text and "upstream_5xx" in text and "spend by route" in text
    for column in ("requests", "spend", "savings", "p50"):
        assert column in text
    assert "upstream_5xx x4" in text


@pytest.mark.parametrize("by", ["key", "user", "model"])
async def test_every_grouping_fits_80_columns(logged: Path, by: str) -> None:
    text = await _report(logged, 80, "--by", by)
    assert f"spend by {by}" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


async def test_wide_keeps_every_column(logged: Path) -> None:
    text = await _report(logged, 260, "--wide")
    header = next(line for line in text.splitlines() if "fallback-rate" in line)
    for column in ("route", "tier", *GROUP_COLUMNS):
        assert column in header
    assert "…" not in text
    narrow = await _report(logged, 80)
    assert "fallback-rate" not in narrow and "satisfaction" in narrow


def test_small_amounts_read_in_plain_notation() -> None:
    assert usd_short(Decimal("0.000029")) == "$0.000029"
    assert usd_short(Decimal("0.0123456")) == "$0.01235"
    assert usd_short(Decimal("-0.00001234567")) == "-$0.00001235"
    assert usd_short(Decimal("12.346")) == "$12.35"
    assert usd_short(Decimal(0)) == "$0"
    assert not SCIENTIFIC.search(usd_short(Decimal("1e-12")))
