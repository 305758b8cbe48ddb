"""Spend per key, team, user, route and model: two teams send traffic through a
real gateway with their own keys; the report (library, CLI text and JSON), the
/metrics labels and the dashboard add up per team, and a team's key sees only
its own team's numbers on the dashboard while a key without a team sees all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import typer
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tests.helpers import gateway_config, gateway_data, settle
from tierwise.cli.report import report_command
from tierwise.observability.report import GROUPINGS, summarize
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

RED, BLUE, ADMIN = "sk-tw-red-0123456789abcdef", "sk-tw-blue-0123456789abcdef", "sk-tw-admin-0123"
KEYS = [
    {"name": "red-app", "team": "red", "key": RED},
    {"name": "blue-app", "team": "blue", "key": BLUE},
    {"name": "ops", "key": ADMIN},
]
ROUTES = {
    "alpha": {"router": {"kind": "fixed"}, "baseline": "big", "tiers": ["cheap"]},
    "beta": {"router": {"kind": "fixed"}, "baseline": "big", "tiers": ["strong"]},
}
BLUE_SECRET_PROMPT = "blue-only prompt [[fault=500]]"


@dataclass
class Traffic:
    """What each key was billed, from the response headers."""

    cost: dict[str, Decimal] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, headers: Any) -> None:
        self.cost[key] = self.cost.get(key, Decimal(0)) + Decimal(headers["x-tierwise-cost-usd"])
        self.count[key] = self.count.get(key, 0) + 1


async def _chat(
    session: aiohttp.ClientSession, url: str, key: str, route: str, prompt: str, user: str
) -> Any:
    body = {"model": route, "user": user, "messages": [{"role": "user", "content": prompt}]}
    headers = {"authorization": f"Bearer {key}"}
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
        await r.read()
        return r.headers


async def send(base_url: str) -> Traffic:
    """Red: three requests on `alpha` (users ann, ann, bo); blue: one on `beta`
    and one that fails there with a prompt only blue may see."""
    sent = Traffic()
    plan = [
        ("red-app", RED, "alpha", "hi", "ann"),
        ("red-app", RED, "alpha", "hi again", "ann"),
        ("red-app", RED, "alpha", "third", "bo"),
        ("blue-app", BLUE, "beta", "hello", "cy"),
        ("blue-app", BLUE, "beta", BLUE_SECRET_PROMPT, "cy"),
    ]
    async with aiohttp.ClientSession() as session:
        for name, key, route, prompt, user in plan:
            sent.add(name, await _chat(session, base_url, key, route, prompt, user))
    return sent


def config_data(base_url: str, store_url: str) -> dict[str, Any]:
    store = {"url": store_url, "capture_prompts": True}
    server = {"api_keys": KEYS}
    return gateway_data(base_url, store=store, routes=ROUTES, server=server)


@pytest.fixture
async def live(upstream: FakeUpstream, store_url: str) -> AsyncIterator[tuple[Running, Traffic]]:
    config = gateway_config(upstream.base_url, **_overrides(upstream.base_url, store_url))
    async with running(config) as server:
        sent = await send(server.base_url)
        await settle(server, 5)
        yield server, sent


def _overrides(base_url: str, store_url: str) -> dict[str, Any]:
    data = config_data(base_url, store_url)
    return {k: data[k] for k in ("store", "routes", "server")}


def _by_name(rows: list[Any]) -> dict[str | None, Any]:
    return {r.name: r for r in rows}


async def test_spend_by_every_grouping_adds_up(
    live: tuple[Running, Traffic], store_url: str
) -> None:
    server, sent = live
    from tierwise.server.app import WRITER

    writer = server.app[WRITER]
    assert writer is not None
    teams = {k["name"]: k.get("team") for k in KEYS}
    report = await summarize(writer.store, 0, 4e9, by=GROUPINGS, teams=teams)
    team = _by_name(report.spend["team"])
    assert set(team) == {"red", "blue"}
    assert team["red"].requests == 3 and team["red"].money.spend_usd == sent.cost["red-app"]
    assert team["blue"].requests == 2 and team["blue"].money.spend_usd == sent.cost["blue-app"]
    assert team["red"].money.spend_usd > 0 and team["red"].money.savings_usd > 0
    key = _by_name(report.spend["key"])
    assert {n: s.requests for n, s in key.items()} == {"red-app": 3, "blue-app": 2}
    user = _by_name(report.spend["user"])
    assert {n: s.requests for n, s in user.items()} == {"ann": 2, "bo": 1, "cy": 2}
    route = _by_name(report.spend["route"])
    assert route["alpha"].money.spend_usd == sent.cost["red-app"]
    model = _by_name(report.spend["model"])
    assert model["cheap-model"].requests == 3 and model[None].requests == 1
    assert sum(s.money.spend_usd for s in report.spend["model"]) == report.money.spend_usd
    with pytest.raises(ValueError, match="cannot group spend by"):
        await summarize(writer.store, 0, 4e9, by=("api_key; DROP TABLE requests",))


async def test_cli_by_team_in_json_and_text(
    live: tuple[Running, Traffic], store_url: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    _, sent = live
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump(config_data(upstream.base_url, store_url)))
    app = typer.Typer()
    app.command()(report_command)
    runner = CliRunner()
    args = ["--since", "1h", "--by", "team", "-c", str(config)]
    result = await asyncio.to_thread(runner.invoke, app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in orjson.loads(result.stdout)["spend"]["team"]}
    assert Decimal(rows["red"]["spend_usd"]) == sent.cost["red-app"]
    assert rows["blue"]["requests"] == 2
    text = await asyncio.to_thread(runner.invoke, app, args)
    assert text.exit_code == 0 and "spend by team" in text.stdout and "blue" in text.stdout
    bad = await asyncio.to_thread(runner.invoke, app, ["--by", "colour", "-c", str(config)])
    assert bad.exit_code == 1 and "--by must be one of" in bad.stderr


async def test_metrics_label_teams_never_users_or_keys(live: tuple[Running, Traffic]) -> None:
    server, sent = live
    async with (
        aiohttp.ClientSession(headers={"x-api-key": ADMIN}) as session,
        session.get(server.base_url + "/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    labels: set[str] = set()
    values: set[str] = set()
    requests: dict[str, float] = {}
    spend: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels |= set(sample.labels)
            values |= set(sample.labels.values())
            team = sample.labels.get("team")
            if sample.name == "tierwise_team_requests_total" and team:
                requests[team] = requests.get(team, 0) + sample.value
            if sample.name == "tierwise_team_spend_usd_total" and team:
                spend[team] = spend.get(team, 0) + sample.value
    assert "team" in labels and not labels & {"user", "user_id", "api_key", "key"}
    assert not values & {"ann", "bo", "cy", "red-app", "blue-app"}
    assert requests == {"red": 3, "blue": 2}
    assert spend["red"] == pytest.approx(float(sent.cost["red-app"]))


async def _dashboard(server: Running, key: str, path: str = "/dashboard/data.json") -> str:
    async with aiohttp.ClientSession() as session:
        url = server.base_url + path
        async with session.get(url, params={"since": "1h"}, headers={"x-api-key": key}) as r:
            assert r.status == 200, await r.text()
            return await r.text()


async def test_a_team_key_sees_only_its_team_on_the_dashboard(
    live: tuple[Running, Traffic],
) -> None:
    server, sent = live
    red = orjson.loads(await _dashboard(server, RED))
    assert red["totals"]["requests"] == 3
    assert Decimal(red["totals"]["spend_usd"]) == sent.cost["red-app"]
    assert {g["route"] for g in red["groups"]} == {"alpha"}
    assert red["failures"] == [] and list(red["spend"]) == ["team"]
    assert [r["name"] for r in red["spend"]["team"]] == ["red"]
    page = await _dashboard(server, RED, "/dashboard")
    assert "beta" not in page and "blue" not in page and "strong-model" not in page
    assert 'data-testid="table-spend-team"' in page
    assert 'data-testid="table-spend-key"' not in page
    assert 'data-testid="experiments"' not in page
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            server.base_url + "/dashboard/data.json",
            params={"team": "blue"},
            headers={"x-api-key": RED},
        ) as other,
    ):
        assert other.status == 400 and "choose one of ['red']" in await other.text()
    admin = orjson.loads(await _dashboard(server, ADMIN))
    assert admin["totals"]["requests"] == 5
    assert {r["name"] for r in admin["spend"]["key"]} == {"red-app", "blue-app"}
    assert [f["prompt"] for f in admin["failures"]] == [BLUE_SECRET_PROMPT]
    blue_page = await _dashboard(server, BLUE, "/dashboard")
    admin_page = await _dashboard(server, ADMIN, "/dashboard")
    assert "blue-only prompt" in blue_page and "blue-only prompt" in admin_page
    assert 'data-testid="spend-key-red-app-spend"' in admin_page
    assert 'data-testid="experiments"' in admin_page
