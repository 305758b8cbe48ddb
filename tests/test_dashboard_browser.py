"""The dashboard in headless Chromium: real traffic with faults, a sign-in with
an API key, and charts and tables that show what the report computes."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.browser import needs_chromium, text
from tests.helpers import FALLBACK, ROUTES, gateway_config, post_feedback, send_traffic, settle
from tierwise.observability.formatting import ms, pct, usd
from tierwise.observability.report import summarize
from tierwise.server.dashboard import COOKIE
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

SECRET = "sk-tw-dash-0123456789abcdef"
LIMITED = "sk-tw-limited-9876543210"
REPO = Path(__file__).resolve().parent.parent

pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install playwright)"
)
pytestmark = needs_chromium


@pytest.fixture
async def server(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Running]:
    keys = [
        {"name": "team-dash", "key": SECRET},
        {
            "name": "limited",
            "key_sha256": hashlib.sha256(LIMITED.encode()).hexdigest(),
            "models": ["cheap"],
        },
    ]
    config = gateway_config(
        upstream.base_url,
        store={"url": f"sqlite:///{tmp_path / 'dash.db'}", "capture_prompts": True},
        routes=ROUTES,
        fallback=FALLBACK,
        server={"api_keys": keys},
    )
    async with running(config) as live:
        yield live


async def test_dashboard_shows_the_recorded_traffic(
    server: Running, browser: Any, tmp_path: Path
) -> None:
    sent = await send_traffic(server.base_url, SECRET)
    scores = [(sent.id_of(0), "up"), (sent.id_of(1), "down"), (sent.id_of(2), 4)]
    await post_feedback(server.base_url, scores, SECRET)
    store = await settle(server, len(sent.rows))
    now = time.time()
    report = await summarize(store, now - 86400, now)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Refused" in m.text else None)
    await sign_in(page, server.base_url)
    await check_cookie(context)
    await check_numbers(page, report)
    await check_failures(page, report)
    html = await page.content()
    assert SECRET not in html and LIMITED not in html
    assert "all down [[fault=500]]" in html
    await save_screenshot(page, tmp_path)
    await check_range_filter(page)
    await check_json(page, server.base_url, report)
    await page.get_by_role("button", name="sign out").click()
    assert await page.get_by_placeholder("API key").count() == 1
    assert problems == [], "the page broke its own content security policy"
    await context.close()


async def sign_in(page: Any, base_url: str) -> None:
    response = await page.goto(base_url + "/dashboard")
    assert response.status == 401
    headers = await response.all_headers()
    assert "default-src 'none'" in headers["content-security-policy"]
    for key, status, message in (
        ("sk-wrong", 401, "invalid API key"),
        (LIMITED, 403, "limited to some models"),
    ):
        await page.goto(base_url + "/dashboard")
        await page.get_by_placeholder("API key").fill(key)
        async with page.expect_response(base_url + "/dashboard/login") as caught:
            await page.get_by_role("button", name="Sign in").click()
        assert (await caught.value).status == status
        assert message in await page.content()
    await page.goto(base_url + "/dashboard")
    await page.get_by_placeholder("API key").fill(SECRET)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base_url + "/dashboard")
    assert await text(page, "kpi-requests") == "9"
    styled = await page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor")
    assert styled == "rgb(29, 35, 48)", "the inline stylesheet was not applied"


async def check_cookie(context: Any) -> None:
    (cookie,) = [c for c in await context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/dashboard" and SECRET not in cookie["value"]


async def check_numbers(page: Any, report: Any) -> None:
    money = report.money
    assert await text(page, "kpi-errors") == "1"
    assert await text(page, "kpi-degraded") == "1"
    spend = page.get_by_test_id("kpi-spend")
    assert await spend.get_attribute("data-value") == f"{money.spend_usd:f}"
    assert await text(page, "kpi-spend") == usd(money.spend_usd)
    assert await text(page, "kpi-savings") == usd(money.savings_usd)
    assert await text(page, "kpi-savings-share") == pct(money.savings_share)
    assert await text(page, "kpi-router-tax") == "$0"
    assert await text(page, "kpi-satisfaction") == pct(report.satisfaction.mean)
    buckets = page.get_by_test_id("chart-spend-bucket")
    assert await buckets.count() == len(report.buckets) == 48
    share = await text(page, "tier-share-strong")
    assert share.endswith("55.6% (5)"), share
    assert await text(page, "trigger-upstream_5xx-fallbacks") == "3 fallbacks"
    assert await text(page, "trigger-upstream_5xx-escalations") == "2 escalations"
    assert await text(page, "trigger-quality_check-unrecovered") == "1 unrecovered"
    assert await text(page, "trigger-rate_limited-escalations") == "1 escalations"
    for g in report.groups:
        name = f"group-{g.route}-{g.tier or 'none'}"
        assert await text(page, f"{name}-requests") == str(g.counts.requests)
        assert await text(page, f"{name}-spend") == usd(g.money.spend_usd)
        assert await text(page, f"{name}-p95") == ms(g.latency.p95_ms)
        assert await text(page, f"{name}-satisfaction") == pct(g.satisfaction.mean)
    assert await text(page, "group-auto-cheap-satisfaction") == "50.0%"
    assert await text(page, "group-auto-strong-satisfaction") == "75.0%"
    p99 = await text(page, "latency-auto-cheap-p99")
    assert p99 == f"p99 {ms(report.groups[0].latency.p99_ms)}"


async def check_failures(page: Any, report: Any) -> None:
    failures = page.get_by_test_id("failure")
    assert await failures.count() == 2
    statuses = await page.get_by_test_id("failure-status").all_text_contents()
    assert statuses == ["degraded", "error"]
    error = failures.nth(1)
    assert await error.get_attribute("data-request-id") == report.failures[1].request_id
    triggers = await error.get_by_test_id("attempt-trigger").all_text_contents()
    assert triggers == ["upstream_5xx"] * 4


async def save_screenshot(page: Any, tmp_path: Path) -> None:
    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    shutil.copyfile(shot, out / "dashboard.png")


async def check_range_filter(page: Any) -> None:
    await page.locator("#since").fill("1h")
    await page.get_by_role("button", name="show").click()
    await page.wait_for_url("**/dashboard?since=1h")
    assert await text(page, "kpi-requests") == "9"
    assert await page.get_by_test_id("chart-spend-bucket").count() == 60
    await page.locator("#since").fill("2999-01-01")
    await page.get_by_role("button", name="show").click()
    await page.wait_for_url("**/dashboard?since=2999-01-01")
    assert await text(page, "kpi-requests") == "0"
    assert await page.get_by_test_id("no-failures").count() == 1
    await page.locator("#since").fill("whenever")
    async with page.expect_response("**/dashboard?since=whenever") as caught:
        await page.get_by_role("button", name="show").click()
    assert (await caught.value).status == 400


async def check_json(page: Any, base_url: str, report: Any) -> None:
    response = await page.goto(base_url + "/dashboard/data.json?since=24h")
    assert response.status == 200
    data = orjson.loads(await response.body())
    assert data["totals"]["requests"] == 9
    assert data["totals"]["spend_usd"] == f"{report.money.spend_usd:f}"
    url = base_url + "/dashboard/data.json?since=1h"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as anonymous:
            assert anonymous.status == 401
        async with session.get(url, headers={"x-api-key": LIMITED}) as limited:
            assert limited.status == 403
        async with session.get(url, headers={"authorization": f"Bearer {SECRET}"}) as keyed:
            assert keyed.status == 200 and (await keyed.json())["totals"]["requests"] == 9
        forged = {
            "origin": "http://evil.example",
            "content-type": "application/x-www-form-urlencoded",
        }
        async with session.post(
            base_url + "/dashboard/login", data=f"key={SECRET}", headers=forged
        ) as x:
            assert x.status == 403 and COOKIE not in x.cookies
    await page.goto(base_url + "/dashboard")
