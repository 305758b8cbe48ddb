"""The dashboard on its own: it runs on the state it is handed (keys, request log,
experiments, wall clock) on any aiohttp application, and every name, key and
prompt it shows is text on the page, never markup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.helpers import gateway_config, settle
from tierwise.experiments.state import Experiments
from tierwise.observability.formatting import when
from tierwise.server.auth import ApiKey, KeyRing, digest
from tierwise.server.dashboard import COOKIE, DashboardState, add_dashboard_routes
from tierwise.server.dashboard.access import SESSION_S
from tierwise.server.run import running
from tierwise.store import open_store
from tierwise.store.writer import RecordWriter
from tierwise.testing import FakeUpstream

SECRET = "sk-tw-dashboard-0123456789abcdef"
EVIL_ROUTE = "<script>alert('route')</script>"
EVIL_TIER = "<img src=x onerror=alert('tier')>"
EVIL_KEY = "<b>team</b>"
EVIL_PROMPT = "</pre><script>alert('prompt')</script> [[fault=500]]"


class Parsed(HTMLParser):
    """The elements and the text of a page, as a browser would read them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def shows(self, text: str) -> bool:
        return any(text in t for t in self.texts)


async def chat(session: aiohttp.ClientSession, base_url: str, prompt: str) -> int:
    body = {"model": EVIL_ROUTE, "messages": [{"role": "user", "content": prompt}]}
    headers = {"authorization": f"Bearer {SECRET}"}
    async with session.post(base_url + "/v1/chat/completions", json=body, headers=headers) as r:
        return r.status


async def test_names_on_the_page_are_text_not_markup(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = gateway_config(
        upstream.base_url,
        store={"url": f"sqlite:///{tmp_path / 'names.db'}", "capture_prompts": True},
        tiers={"cheap": ["mini"], "strong": ["big"], EVIL_TIER: ["mini-b"]},
        routes={
            "auto": {"router": {"kind": "fixed"}, "baseline": "big"},
            EVIL_ROUTE: {"router": {"kind": "fixed"}, "baseline": "big", "tiers": [EVIL_TIER]},
        },
        server={"api_keys": [{"name": EVIL_KEY, "key": SECRET}]},
    )
    async with running(config) as live, aiohttp.ClientSession() as session:
        assert await chat(session, live.base_url, "hello") == 200
        assert await chat(session, live.base_url, EVIL_PROMPT) == 502
        await settle(live, 2)
        url = live.base_url + "/dashboard"
        async with session.get(url, headers={"x-api-key": SECRET}) as response:
            assert response.status == 200
            html = await response.text()
        async with session.get(url, params={"since": EVIL_ROUTE}) as bad:
            assert bad.status == 401
        async with session.get(
            url, params={"since": EVIL_ROUTE}, headers={"x-api-key": SECRET}
        ) as bad:
            assert bad.status == 400
            unreadable = Parsed(await bad.text())
    page = Parsed(html)
    assert "script" not in page.tags and "img" not in page.tags
    assert "b" in page.tags, "the page has no bold text at all"
    for name in (EVIL_ROUTE, EVIL_TIER, EVIL_KEY, EVIL_PROMPT):
        assert page.shows(name), f"{name!r} is not shown as text"
    assert "&lt;script&gt;alert(" in html
    assert "script" not in unreadable.tags and unreadable.shows(EVIL_ROUTE)


class Wall:
    """The dashboard's wall clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[RecordWriter]:
    writer = RecordWriter(open_store(f"sqlite:///{tmp_path / 'state.db'}"))
    await writer.start()
    try:
        yield writer
    finally:
        await writer.close()


async def test_the_dashboard_runs_on_the_state_it_is_handed(writer: RecordWriter) -> None:
    clock = Wall(1_000_000.0)
    keys = KeyRing([ApiKey("ops", digest(SECRET), None)])
    app = web.Application()
    experiments = Experiments()
    add_dashboard_routes(app, DashboardState(keys, writer, lambda: experiments, clock=clock))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/dashboard"
    try:
        async with aiohttp.ClientSession() as session:
            login = await session.post(base + "/login", data={"key": SECRET}, allow_redirects=False)
            assert login.status == 303
            token = login.cookies[COOKIE].value
            assert token.startswith(f"{1_000_000 + SESSION_S}.")
            cookie = {"cookie": f"{COOKIE}={token}"}
            async with session.get(base, headers=cookie) as page:
                assert page.status == 200
                html = await page.text()
            assert f"{when(1_000_000 - 86400)} to {when(1_000_000)}" in html
            assert 'data-testid="kpi-requests">0<' in html
            assert 'data-testid="no-experiments"' in html
            clock.now += SESSION_S + 1
            async with session.get(base, headers=cookie) as expired:
                assert expired.status == 401
                assert "session has expired" in await expired.text()
    finally:
        await runner.cleanup()
