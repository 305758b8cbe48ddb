"""The dashboard's filters and request explorer in headless Chromium: real
traffic through a gateway with faults, pages whose numbers equal what the
store holds, money in plain notation, and a page that stays compact with
twenty routes. Screenshots go to the test's tmp path and `test-output/`."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.browser import needs_chromium, text
from tests.helpers import FALLBACK, ROUTES, gateway_config, send_traffic, settle
from tierwise.observability.formatting import usd
from tierwise.observability.report import summarize
from tierwise.server.dashboard.charts import money_tick
from tierwise.server.dashboard.explorer import plain
from tierwise.server.run import Running, running
from tierwise.store import Store, from_pusd
from tierwise.store.reports import EVERYTHING, RequestFilter
from tierwise.testing import FakeUpstream

ADMIN = "sk-tw-ops-0123456789abcdef"
ALPHA = "sk-tw-alpha-0123456789abcdef"
BETA = "sk-tw-beta-0123456789abcdef"
LIMITED = "sk-tw-limited-0123456789abcdef"
MARKUP = "explain <b>bold</b><script>alert(1)</script> please"
PLAIN_MONEY = re.compile(r"-?\$[0-9,]+(\.[0-9]+)?")
REPO = Path(__file__).resolve().parent.parent
DAY = 86400.0

pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install playwright)"
)
pytestmark = needs_chromium


@pytest.fixture
async def server(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Running]:
    keys = [
        {"name": "ops", "key": ADMIN},
        {"name": "alpha-key", "team": "alpha", "key": ALPHA},
        {"name": "beta-key", "team": "beta", "key": BETA},
        {"name": "limited", "key": LIMITED, "models": ["cheap"]},
    ]
    config = gateway_config(
        upstream.base_url,
        store={"url": f"sqlite:///{tmp_path / 'explorer.db'}", "capture_prompts": True},
        routes=ROUTES,
        fallback=FALLBACK,
        server={"api_keys": keys},
    )
    async with running(config) as live:
        yield live


async def ask(base_url: str, key: str, model: str, prompt: str) -> str:
    async with openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0) as c:
        messages: Any = [{"role": "user", "content": prompt}]
        raw = await c.chat.completions.with_raw_response.create(model=model, messages=messages)
        return str(raw.headers["x-request-id"])


async def sign_in(page: Any, base_url: str, path: str, key: str) -> None:
    await page.goto(base_url + path)
    await page.get_by_placeholder("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base_url + "/dashboard")


async def shoot(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    shutil.copyfile(shot, out / name)


async def test_explorer_and_filters_show_what_the_store_holds(
    server: Running, browser: Any, tmp_path: Path
) -> None:
    sent = await send_traffic(server.base_url, ALPHA)
    fallback_id = sent.id_of(2)
    beta_ids = [await ask(server.base_url, BETA, "strong", MARKUP)]
    beta_ids.append(await ask(server.base_url, BETA, "auto", "hello from beta"))
    store = await settle(server, len(sent.rows) + 2)
    await check_access(server.base_url, beta_ids[0])
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Refused" in m.text else None)
    await sign_in(page, server.base_url, "/dashboard/requests", ADMIN)
    await check_listing(page, server.base_url, store, beta_ids)
    await shoot(page, tmp_path, "explorer-list.png")
    await check_detail(page, server.base_url, store, fallback_id)
    await shoot(page, tmp_path, "explorer-detail.png")
    await check_markup(page, server.base_url, beta_ids[0])
    await check_dashboard_filters(page, server.base_url, store)
    await shoot(page, tmp_path, "dashboard-filtered.png")
    assert problems == [], "a page broke its own content security policy"
    await context.close()


async def check_access(base_url: str, beta_id: str) -> None:
    url = base_url + "/dashboard/requests"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as anonymous:
            assert anonymous.status == 401 and "API key" in await anonymous.text()
        async with session.get(url, headers={"x-api-key": LIMITED}) as limited:
            assert limited.status == 403
        async with session.get(url + "/nope", headers={"x-api-key": ADMIN}) as missing:
            assert missing.status == 404
        alpha = {"x-api-key": ALPHA}
        async with session.get(url, headers=alpha) as own:
            assert own.status == 200 and "9 matching requests" in await own.text()
            assert beta_id not in await own.text()
        async with session.get(f"{url}/{beta_id}", headers=alpha) as other_team:
            assert other_team.status == 404
        async with session.get(f"{url}/{beta_id}", headers={"x-api-key": BETA}) as own_team:
            assert own_team.status == 200
        bad = {"x-api-key": ADMIN}
        async with session.get(url + "?route=nowhere", headers=bad) as unknown:
            assert unknown.status == 400 and "unknown route" in await unknown.text()
        async with session.get(base_url + "/dashboard?team=gamma", headers=bad) as team:
            assert team.status == 400
        async with session.get(url + "?refresh=5", headers=bad) as refresh:
            assert refresh.status == 400


async def check_listing(page: Any, base_url: str, store: Store, beta_ids: list[str]) -> None:
    now = time.time()
    await page.goto(base_url + "/dashboard/requests")
    everything = await store.count_matching(now - DAY, now + 1, EVERYTHING)
    assert everything == 11
    assert await page.get_by_test_id("explorer-count").get_attribute("data-value") == "11"
    rows = page.get_by_test_id("request-row")
    assert await rows.count() == 11
    newest = await store.recent_requests(now - DAY, now + 1, EVERYTHING, 11)
    shown = [await rows.nth(i).get_attribute("data-request-id") for i in range(11)]
    assert shown == [r["request_id"] for r in newest]
    assert shown[0] == beta_ids[1], "newest first"
    costs = await page.get_by_test_id("request-cost").all_text_contents()
    assert costs == [usd(from_pusd(r["cost_pusd"])) for r in newest]
    assert all(PLAIN_MONEY.fullmatch(c) for c in costs), costs
    assert any(from_pusd(r["cost_pusd"]) < Decimal("0.0001") for r in newest if r["cost_pusd"])
    await page.get_by_test_id("filter-team").select_option("beta")
    await page.get_by_role("button", name="filter").click()
    await page.wait_for_url("**/dashboard/requests?*team=beta*")
    assert await text(page, "explorer-count") == "2 matching requests, showing 1 to 2"
    assert set(await page.get_by_test_id("request-key").all_text_contents()) == {"beta-key"}
    await page.goto(base_url + "/dashboard/requests?limit=4&offset=4")
    assert await page.get_by_test_id("request-row").count() == 4
    assert (
        await page.get_by_test_id("request-row").first.get_attribute("data-request-id")
        == (newest[4]["request_id"])
    )
    await page.get_by_test_id("page-older").click()
    await page.wait_for_url("**offset=8*")
    assert await page.get_by_test_id("request-row").count() == 3


async def check_detail(page: Any, base_url: str, store: Store, request_id: str) -> None:
    detail = await store.request_detail(request_id)
    attempts = await store.attempts_of([request_id])
    assert detail is not None and len(attempts) >= 2, "the fault should force a fallback"
    await page.goto(base_url + "/dashboard/requests")
    await page.locator(f"[data-request-id='{request_id}'] a").click()
    await page.wait_for_url(f"**/dashboard/requests/{request_id}")
    assert await text(page, "detail-router") == detail["router"]
    assert await text(page, "detail-reason") == (detail["decision_reason"] or "-")
    assert await text(page, "detail-target") == (detail["decision_target"] or "-")
    assert await text(page, "detail-calls") == str(detail["calls"])
    triggers = await page.get_by_test_id("attempt-trigger").all_text_contents()
    assert triggers == [a["trigger"] or "" for a in attempts]
    assert triggers[0] == "upstream_5xx"
    costs = page.get_by_test_id("attempt-cost")
    for index, attempt in enumerate(attempts):
        cell = costs.nth(index)
        assert await cell.text_content() == usd(from_pusd(attempt["cost_pusd"]))
        assert await cell.get_attribute("data-value") == f"{from_pusd(attempt['cost_pusd']):f}"
    total = page.get_by_test_id("detail-cost")
    assert await total.get_attribute("data-value") == f"{from_pusd(detail['cost_pusd']):f}"
    savings = await text(page, "detail-savings")
    assert savings == usd(from_pusd(detail["savings_pusd"])) and "e-" not in savings.lower()
    deployments = await page.get_by_test_id("attempt-deployment").all_text_contents()
    assert deployments == [a["deployment"] for a in attempts]


async def check_markup(page: Any, base_url: str, request_id: str) -> None:
    await page.goto(f"{base_url}/dashboard/requests/{request_id}")
    assert await text(page, "detail-prompt") == f"user: {MARKUP}" or MARKUP in await text(
        page, "detail-prompt"
    )
    assert await page.locator("[data-testid=detail-prompt] b").count() == 0
    assert await page.locator("script").count() == 0


async def check_dashboard_filters(page: Any, base_url: str, store: Store) -> None:
    await page.goto(base_url + "/dashboard?since=24h")
    assert await text(page, "kpi-requests") == "11"
    now = time.time()
    route = RequestFilter(route="auto")
    report = await summarize(store, now - DAY, now + 1, where=route)
    await page.get_by_test_id("filter-route").select_option("auto")
    await page.get_by_test_id("filter-refresh").select_option("30")
    await page.get_by_role("button", name="filter").click()
    await page.wait_for_url("**/dashboard?*route=auto*")
    assert await text(page, "kpi-requests") == str(report.counts.requests)
    assert report.counts.requests < 11
    spend = page.get_by_test_id("kpi-spend")
    assert await spend.get_attribute("data-value") == f"{report.money.spend_usd:f}"
    assert await spend.text_content() == usd(report.money.spend_usd)
    refresh = page.locator("meta[http-equiv=refresh]")
    assert await refresh.get_attribute("content") == "30"
    beta = await summarize(store, now - DAY, now + 1, where=RequestFilter(api_keys=("beta-key",)))
    await page.goto(base_url + "/dashboard?since=24h&team=beta")
    assert await text(page, "kpi-requests") == str(beta.counts.requests) == "2"
    assert await page.locator("meta[http-equiv=refresh]").count() == 0
    model = (await store.filter_choices(0, now + 1))["models"][0]
    await page.goto(f"{base_url}/dashboard/requests?model={model}")
    count = await store.count_matching(0, now + 1, RequestFilter(model=model))
    assert await page.get_by_test_id("explorer-count").get_attribute("data-value") == str(count)
    assert set(await page.get_by_test_id("request-model").all_text_contents()) == {model}


def test_money_is_plain_for_tiny_and_large_amounts() -> None:
    assert usd(Decimal("2.908e-05")) == "$0.00002908"
    assert usd(from_pusd(29)) == "$0.000000000029"
    assert usd(Decimal("-1E-7")) == "-$0.0000001"
    assert usd(Decimal("1234.5")) == "$1,234.50"
    assert money_tick(2.908e-05) == "$0.00002908" and money_tick(-1.5e-7) == "-$0.00000015"
    assert plain(1e-05) == "0.00001" and plain(100.0) == "100"


async def test_twenty_routes_keep_the_dashboard_compact(
    upstream: FakeUpstream, browser: Any, tmp_path: Path
) -> None:
    routes = {f"route-{i:02d}": {"router": {"kind": "fixed"}, "baseline": "big"} for i in range(20)}
    routes["route-00"]["baseline"] = "mini"  # no savings: the chart's top is the tiny spend
    config = gateway_config(
        upstream.base_url,
        store={"url": f"sqlite:///{tmp_path / 'twenty.db'}"},
        routes=routes,
        fallback=FALLBACK,
    )
    async with running(config) as live:
        for name in routes:
            await ask(live.base_url, "x", name, f"hello {name}")
        await settle(live, 20)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(live.base_url + "/dashboard")
        assert (
            await page.locator("[data-testid^=group-route-][data-testid$=-requests]").count() == 20
        )
        height = await page.evaluate("document.documentElement.scrollHeight")
        hidden = await page.evaluate(
            "[...document.querySelectorAll('.scroll')]"
            ".reduce((n, e) => n + e.scrollHeight - e.clientHeight, 0)"
        )
        print(f"dashboard height with 20 routes: {height}px (+{hidden}px inside scroll boxes)")
        assert height < 3500, height
        assert hidden > 1000, "the long sections should scroll inside bounded boxes"
        await shoot(page, tmp_path, "dashboard-twenty-routes.png")
        await check_tiny_money(page, live.base_url)
        await page.close()


async def check_tiny_money(page: Any, base_url: str) -> None:
    """One cheap request's spend, far below $0.0001, on the KPI and the chart axis."""
    await page.goto(base_url + "/dashboard?route=route-00")
    spend = page.get_by_test_id("kpi-spend")
    exact = Decimal(str(await spend.get_attribute("data-value")))
    assert Decimal(0) < exact < Decimal("0.0001")
    assert await spend.text_content() == usd(exact)
    ticks = await page.locator("text.tick").all_text_contents()
    money = [t for t in ticks if "$" in t]
    assert money and all(PLAIN_MONEY.fullmatch(t) for t in money), money
    saved = Decimal(str(await page.get_by_test_id("kpi-savings").get_attribute("data-value")))
    assert money_tick(float(max(exact, saved))) in money
    body = await page.inner_text("body")
    assert not re.search(r"[0-9]e-[0-9]", body), "scientific notation on the page"
