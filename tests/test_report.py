"""Reports over the request log, on SQLite and on the real PostgreSQL: traffic
with faults goes through the server, and the report adds up to what was sent."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import typer
import yaml
from aiohttp import web
from typer.testing import CliRunner

from tests.helpers import (
    FALLBACK,
    ROUTES,
    Sent,
    gateway_config,
    post_feedback,
    send_traffic,
    settle,
)
from tierwise.cli.report import report_command
from tierwise.observability.report import auto_bucket, parse_since, redact, summarize
from tierwise.server.run import Running, build, running
from tierwise.store import Store
from tierwise.store.inspect import select
from tierwise.testing import FakeUpstream

EXPECTED_TRIGGERS = {
    "upstream_5xx": {"attempts": 6, "fallbacks": 3, "escalations": 2, "unrecovered": 1},
    "quality_check": {"attempts": 3, "fallbacks": 0, "escalations": 2, "unrecovered": 1},
    "rate_limited": {"attempts": 1, "fallbacks": 0, "escalations": 1, "unrecovered": 0},
}


@pytest.fixture
async def server(upstream: FakeUpstream, store_url: str) -> AsyncIterator[Running]:
    store = {"url": store_url, "capture_prompts": True}
    config = gateway_config(upstream.base_url, store=store, routes=ROUTES, fallback=FALLBACK)
    async with running(config) as live:
        yield live


async def test_report_adds_up_to_the_traffic_sent(server: Running, store_url: str) -> None:
    started = time.time() - 1
    sent = await send_traffic(server.base_url)
    await post_feedback(
        server.base_url, [(sent.id_of(0), "up"), (sent.id_of(1), "down"), (sent.id_of(2), 4)]
    )
    store = await settle(server, len(sent.rows))
    report = await summarize(store, started - 3600, time.time() + 1, bucket_s=60)
    data = orjson.loads(orjson.dumps(report.to_json()))
    totals = data["totals"]
    assert totals["requests"] == len(sent.rows) == 9
    assert totals["errors"] == len(sent.where(status="error")) == 1
    assert totals["degraded"] == len(sent.where(status="degraded")) == 1
    spend = sum((r["cost"] for r in sent.rows), Decimal(0))
    assert report.money.spend_usd == spend and Decimal(totals["spend_usd"]) == spend
    money = report.money
    assert money.savings_usd == money.baseline_usd - money.spend_usd
    assert money.baseline_usd > 0 and totals["savings_share"] == pytest.approx(
        float(money.savings_usd / money.baseline_usd)
    )
    assert totals["fallbacks"] == len([r for r in sent.rows if r["calls"] > 1]) == 5
    assert totals["escalations"] == 5
    triggers = {t.pop("trigger"): t for t in data["triggers"]}
    assert triggers == EXPECTED_TRIGGERS
    await _check_groups(report, data, sent, store)
    _check_buckets(data, spend)
    _check_failures(data, sent)
    assert totals["satisfaction"] == pytest.approx((1.0 + 0.0 + 0.75) / 3)
    assert totals["feedback_count"] == 3


async def _check_groups(report: Any, data: dict[str, Any], sent: Sent, store: Store) -> None:
    groups = {(g["route"], g["tier"]): g for g in data["groups"]}
    expected_keys = {(r["route"], r["tier"]) for r in sent.rows}
    assert set(groups) == expected_keys
    for (route, tier), g in groups.items():
        mine = sent.where(route=route, tier=tier)
        assert g["requests"] == len(mine)
        assert g["share"] == pytest.approx(len(mine) / len(sent.rows))
        assert Decimal(g["spend_usd"]) == sum((r["cost"] for r in mine), Decimal(0))
        assert g["fallbacks"] == len([r for r in mine if r["calls"] > 1])
        marks = ", ".join("{}" for _ in mine)
        rows = await select(
            store,
            f"SELECT latency_ms FROM requests WHERE request_id IN ({marks})",
            *(r["id"] for r in mine),
        )
        latencies = [float(r["latency_ms"]) for r in rows]
        assert g["latency"]["p50_ms"] == pytest.approx(statistics.median(latencies))
        assert g["latency"]["mean_ms"] == pytest.approx(statistics.fmean(latencies))
        assert g["latency"]["p99_ms"] <= max(latencies) + 1e-9
    cheap = groups[("auto", "cheap")]
    assert cheap["requests"] == 3 and cheap["satisfaction"] == pytest.approx(0.5)
    assert cheap["feedback_count"] == 2 and cheap["mean_first_token_ms"] is not None
    assert groups[("auto", "strong")]["satisfaction"] == pytest.approx(0.75)
    assert groups[("strong", "strong")]["feedback_count"] == 0
    tiers = {t["tier"]: t["requests"] for t in data["tiers"]}
    assert tiers == {"cheap": 3, "strong": 5, None: 1}
    assert report.tier_shares()[0] == ("strong", 5, pytest.approx(5 / 9))


def _check_buckets(data: dict[str, Any], spend: Decimal) -> None:
    buckets = data["buckets"]
    assert data["bucket_s"] == 60 and len(buckets) >= 60
    assert sum(b["requests"] for b in buckets) == 9
    assert sum((Decimal(b["spend_usd"]) for b in buckets), Decimal(0)) == spend
    assert all(b["start"] == buckets[0]["start"] + i * 60 for i, b in enumerate(buckets))


def _check_failures(data: dict[str, Any], sent: Sent) -> None:
    failures = data["failures"]
    assert [f["status"] for f in failures] == ["degraded", "error"]
    degraded, error = failures
    assert error["request_id"] == sent.where(status="error")[0]["id"]
    assert [a["trigger"] for a in error["attempts"]] == ["upstream_5xx"] * 4
    assert [a["deployment"] for a in error["attempts"]] == ["mini", "mini", "big", "big"]
    assert [a["outcome"] for a in degraded["attempts"]] == ["rejected", "rejected"]
    assert error["prompt"] == "all down [[fault=500]]"


async def test_an_empty_range_and_the_cli(server: Running, store_url: str, tmp_path: Path) -> None:
    sent = await send_traffic(server.base_url)
    store = await settle(server, len(sent.rows))
    later = time.time() + 60
    empty = await summarize(store, later, later + 3600)
    assert empty.counts.requests == 0 and empty.groups == [] and empty.failures == []
    assert empty.money.spend_usd == 0 and empty.satisfaction.mean is None
    assert len(empty.buckets) == 60 and empty.latency.p50_ms is None
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump(cli_config(store_url)))
    app = typer.Typer()
    app.command()(report_command)
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, ["--since", "1h", "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    spend = sum((r["cost"] for r in sent.rows), Decimal(0))
    assert data["totals"]["requests"] == 9 and Decimal(data["totals"]["spend_usd"]) == spend
    table = await asyncio.to_thread(runner.invoke, app, ["--config", str(config)])
    assert table.exit_code == 0, table.output
    assert "routes and tiers" in table.stdout and "upstream_5xx" in table.stdout
    bad = await asyncio.to_thread(runner.invoke, app, ["--since", "soon", "-c", str(config)])
    assert bad.exit_code == 1 and "cannot read 'soon'" in bad.stderr


def cli_config(store_url: str) -> dict[str, Any]:
    return {
        "deployments": {
            "mini": {
                "model": "cheap-model",
                "api_base": "http://127.0.0.1:9/v1",
                "price": {"input": 0.15, "output": 0.6},
            }
        },
        "tiers": {"cheap": ["mini"]},
        "store": {"url": store_url},
    }


def test_parse_since_reads_durations_and_dates() -> None:
    now = 1_700_000_000.0
    assert parse_since("30m", now) == now - 1800
    assert parse_since("24h", now) == now - 86400
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since(" 2w ", now) == now - 14 * 86400
    assert parse_since("1.5h", now) == now - 5400
    assert parse_since("2024-05-01", now) == datetime(2024, 5, 1, tzinfo=UTC).timestamp()
    assert parse_since("2024-05-01T12:30:00+02:00", now) == (
        datetime(2024, 5, 1, 10, 30, tzinfo=UTC).timestamp()
    )
    for bad in ("", "yesterday", "7x", "-3d"):
        with pytest.raises(ValueError, match="cannot read"):
            parse_since(bad, now)


def test_buckets_and_redaction() -> None:
    assert auto_bucket(3600) == 60
    assert auto_bucket(86400) == 1800
    assert auto_bucket(7 * 86400) == 3 * 3600
    assert auto_bucket(365 * 86400) == 7 * 86400
    detail = "Incorrect API key provided: sk-proj-abc123456. Header Bearer tok123"
    assert redact(detail) == "Incorrect API key provided: [REDACTED]. Header [REDACTED]"


async def test_dashboard_without_a_request_log(upstream: FakeUpstream) -> None:
    config = gateway_config(upstream.base_url, store={"enabled": False})
    app = build(config, "127.0.0.1")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/dashboard") as page:
                assert page.status == 409 and "store.enabled" in await page.text()
            async with session.get(base + "/dashboard/data.json") as data:
                assert data.status == 409
            async with session.get(base + "/dashboard/data.json?since=later") as bad:
                assert bad.status == 400 and (await bad.json())["error"]["param"] == "since"
    finally:
        await runner.cleanup()
