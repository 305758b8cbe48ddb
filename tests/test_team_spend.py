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
from tierwise.observability.report import GROUPINGS, spend_by, summarize
from tierwise.record import CostBreakdown, RequestRecord
from tierwise.server.run import Running, running
from tierwise.store import open_store, postgres, sqlite
from tierwise.store.migrations import MIGRATIONS
from tierwise.store.reports import RequestFilter
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


# --- Virtual keys: the team logged with each request ------------------------------------

OPS_ADMIN = "sk-tw-ops-admin-0123"
TEAMS = ("green", "red", "blue")


@dataclass
class VirtualTraffic:
    """Two virtual keys' secrets and the config traffic above, plus what each
    virtual key was billed and the gateway's ids of its requests."""

    secrets: dict[str, str] = field(default_factory=dict)
    sent: Traffic = field(default_factory=Traffic)
    ids: dict[str, list[str]] = field(default_factory=dict)


async def _create_key(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    headers = {"authorization": f"Bearer {OPS_ADMIN}"}
    async with session.post(url + "/admin/keys", json=body, headers=headers) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["key"])


async def send_virtual(base_url: str) -> VirtualTraffic:
    """The config keys' traffic (`send`), then `green-bot` (team green, a team no
    config key has) twice on `alpha` and `red-bot` (team red) once on `beta`."""
    traffic = VirtualTraffic(sent=await send(base_url))
    async with aiohttp.ClientSession() as session:
        for name, team in (("green-bot", "green"), ("red-bot", "red")):
            body = {"name": name, "team": team}
            traffic.secrets[name] = await _create_key(session, base_url, body)
        plan = [
            ("green-bot", "alpha", "g1"),
            ("green-bot", "alpha", "g2"),
            ("red-bot", "beta", "r"),
        ]
        for name, route, prompt in plan:
            secret = traffic.secrets[name]
            headers = await _chat(session, base_url, secret, route, prompt, "dee")
            traffic.sent.add(name, headers)
            traffic.ids.setdefault(name, []).append(headers["x-tierwise-request-id"])
    return traffic


def virtual_config_data(base_url: str, store_url: str) -> dict[str, Any]:
    data = config_data(base_url, store_url)
    data["server"] = {**data["server"], "admin_keys": [{"name": "root", "key": OPS_ADMIN}]}
    return data


@pytest.fixture
async def virtual(
    upstream: FakeUpstream, store_url: str
) -> AsyncIterator[tuple[Running, VirtualTraffic]]:
    data = virtual_config_data(upstream.base_url, store_url)
    overrides = {k: data[k] for k in ("store", "routes", "server")}
    async with running(gateway_config(upstream.base_url, **overrides)) as server:
        traffic = await send_virtual(server.base_url)
        await settle(server, 8)
        yield server, traffic


async def _view(server: Running, key: str, path: str, **query: str) -> str:
    async with (
        aiohttp.ClientSession(headers={"x-api-key": key}) as session,
        session.get(server.base_url + path, params={"since": "1h", **query}) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.text()


async def test_a_virtual_keys_spend_counts_for_its_team_in_the_cli_report(
    virtual: tuple[Running, VirtualTraffic],
    store_url: str,
    upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    _, traffic = virtual
    cost = traffic.sent.cost
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump(virtual_config_data(upstream.base_url, store_url)))
    app = typer.Typer()
    app.command()(report_command)
    args = ["--since", "1h", "--by", "team", "-c", str(config)]
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in orjson.loads(result.stdout)["spend"]["team"]}
    assert set(rows) == {"red", "blue", "green"}
    assert rows["green"]["requests"] == 2
    assert Decimal(rows["green"]["spend_usd"]) == cost["green-bot"] > 0
    assert rows["red"]["requests"] == 4
    assert Decimal(rows["red"]["spend_usd"]) == cost["red-app"] + cost["red-bot"]
    text = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert text.exit_code == 0 and "green" in text.stdout and "(no team)" not in text.stdout


async def test_a_virtual_keys_team_labels_its_metrics(
    virtual: tuple[Running, VirtualTraffic],
) -> None:
    server, traffic = virtual
    async with (
        aiohttp.ClientSession(headers={"x-api-key": ADMIN}) as session,
        session.get(server.base_url + "/metrics") as response,
    ):
        text = await response.text()
    requests: dict[str, float] = {}
    spend: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            team = sample.labels.get("team", "")
            if sample.name == "tierwise_team_requests_total":
                requests[team] = requests.get(team, 0) + sample.value
            if sample.name == "tierwise_team_spend_usd_total":
                spend[team] = spend.get(team, 0) + sample.value
    assert requests == {"red": 4, "blue": 2, "green": 2}
    assert spend["green"] == pytest.approx(float(traffic.sent.cost["green-bot"]))
    red = traffic.sent.cost["red-app"] + traffic.sent.cost["red-bot"]
    assert spend["red"] == pytest.approx(float(red))


async def test_a_virtual_team_key_sees_only_its_team_on_the_dashboard(
    virtual: tuple[Running, VirtualTraffic],
) -> None:
    server, traffic = virtual
    green_key, cost = traffic.secrets["green-bot"], traffic.sent.cost
    green = orjson.loads(await _dashboard(server, green_key))
    assert green["totals"]["requests"] == 2
    assert Decimal(green["totals"]["spend_usd"]) == cost["green-bot"]
    assert [r["name"] for r in green["spend"]["team"]] == ["green"]
    page = await _dashboard(server, green_key, "/dashboard")
    assert "beta" not in page and 'data-testid="table-spend-team"' in page
    red = orjson.loads(await _dashboard(server, RED))
    assert red["totals"]["requests"] == 4
    assert Decimal(red["totals"]["spend_usd"]) == cost["red-app"] + cost["red-bot"]
    admin = orjson.loads(await _view(server, ADMIN, "/dashboard/data.json", team="green"))
    assert admin["totals"]["requests"] == 2
    teams = {r["name"]: r["requests"] for r in admin["spend"]["team"]}
    assert teams == {"green": 2}
    listing = await _dashboard(server, green_key, "/dashboard/requests")
    assert all(rid in listing for rid in traffic.ids["green-bot"])
    assert traffic.ids["red-bot"][0] not in listing
    async with aiohttp.ClientSession(headers={"x-api-key": green_key}) as session:
        for rid, wanted in ((traffic.ids["green-bot"][0], 200), (traffic.ids["red-bot"][0], 404)):
            async with session.get(f"{server.base_url}/dashboard/requests/{rid}") as detail:
                assert detail.status == wanted


async def _metrics(server: Running, key: str | None) -> tuple[int, str]:
    headers = {"x-api-key": key} if key else {}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(server.base_url + "/metrics") as response,
    ):
        return response.status, await response.text()


async def test_metrics_refuse_team_keys_and_take_admin_and_teamless_keys(
    virtual: tuple[Running, VirtualTraffic],
) -> None:
    server, traffic = virtual
    for key in (RED, BLUE, traffic.secrets["green-bot"]):
        status, text = await _metrics(server, key)
        error = orjson.loads(text)["error"]
        assert status == 403 and error["type"] == "permission_error"
        assert "dashboard" in error["message"] and "tierwise report" in error["message"]
        assert "tierwise_team_spend_usd_total" not in text
    for key in (ADMIN, OPS_ADMIN):
        status, text = await _metrics(server, key)
        assert status == 200 and "tierwise_team_spend_usd_total" in text
        assert 'team="blue"' in text and 'team="green"' in text
    for key in (None, "sk-not-a-key"):
        assert (await _metrics(server, key))[0] == 401


async def _solo(server: Running) -> tuple[str, str]:
    """A virtual key without a team, and the id of the one request it made."""
    async with aiohttp.ClientSession() as session:
        secret = await _create_key(session, server.base_url, {"name": "solo-bot"})
        headers = await _chat(session, server.base_url, secret, "alpha", "solo", "eve")
    await settle(server, 9)
    return secret, headers["x-tierwise-request-id"]


async def test_a_virtual_key_without_a_team_sees_only_its_own_requests(
    virtual: tuple[Running, VirtualTraffic],
) -> None:
    server, traffic = virtual
    secret, rid = await _solo(server)
    own = orjson.loads(await _view(server, secret, "/dashboard/data.json"))
    assert own["totals"]["requests"] == 1 and list(own["spend"]) == ["team"]
    assert sum(r["requests"] for r in own["spend"]["team"]) == 1
    page = await _view(server, secret, "/dashboard")
    assert 'data-testid="table-spend-key"' not in page and "red-app" not in page
    assert 'data-testid="experiments"' not in page and "beta" not in page
    listing = await _view(server, secret, "/dashboard/requests")
    assert rid in listing and traffic.ids["green-bot"][0] not in listing
    async with aiohttp.ClientSession(headers={"x-api-key": secret}) as session:
        for request_id, wanted in ((rid, 200), (traffic.ids["red-bot"][0], 404)):
            async with session.get(f"{server.base_url}/dashboard/requests/{request_id}") as r:
                assert r.status == wanted
    status, text = await _metrics(server, secret)
    assert status == 403 and "virtual key" in orjson.loads(text)["error"]["message"]
    for admin_key in (ADMIN, OPS_ADMIN):
        admin = orjson.loads(await _view(server, admin_key, "/dashboard/data.json"))
        assert admin["totals"]["requests"] == 9
        assert {"solo-bot", "red-bot"} <= {r["name"] for r in admin["spend"]["key"]}


# --- The request log's team column, on a log older than it ------------------------------


def logged(rid: str, key: str | None, team: str | None, cost: str) -> RequestRecord:
    money = CostBreakdown(attempts_usd=Decimal(cost))
    return RequestRecord(rid, "alpha", cost=money, started_at=1e9, api_key=key, team=team)


async def test_an_upgraded_log_groups_by_the_logged_team_and_falls_back_for_rows_without(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = [m for m in MIGRATIONS if m[0] != "m008_request_team"]
    for engine in (sqlite, postgres):
        monkeypatch.setattr(engine, "MIGRATIONS", older)
    before = open_store(store_url)
    await before.migrate()
    await before.close()
    monkeypatch.undo()
    store = open_store(store_url)
    try:
        await store.migrate()
        await store.record(
            [
                logged("old-red", "red-app", None, "0.25"),
                logged("new-red", "red-bot", "red", "0.5"),
                logged("green", "green-bot", "green", "1"),
                logged("old-unknown", "ghost", None, "0.125"),
                logged("no-key", None, None, "0.0625"),
            ]
        )
        teams = {"red-app": "red", "red-bot": None}
        spend = await spend_by(store, (0, 4e9), "team", teams)
        found = {s.name: (s.requests, s.money.spend_usd) for s in spend}
        assert found == {
            "green": (1, Decimal(1)),
            "red": (2, Decimal("0.75")),
            "(no team)": (2, Decimal("0.1875")),
        }
        red = RequestFilter(team="red", team_keys=("red-app", "red-bot"))
        assert await store.count_matching(0, 4e9, red) == 2
        assert await store.count_matching(0, 4e9, RequestFilter(team="red")) == 1
        assert await store.logged_teams(0, 4e9) == ["green", "red"]
        detail = await store.request_detail("green")
        assert detail is not None and detail["team"] == "green"
    finally:
        await store.close()


async def test_streamed_and_responses_api_requests_log_their_keys_team(
    virtual: tuple[Running, VirtualTraffic],
) -> None:
    server, traffic = virtual
    headers = {"authorization": f"Bearer {traffic.secrets['green-bot']}"}
    messages = [{"role": "user", "content": "hi"}]
    calls = [
        ("/v1/chat/completions", {"model": "alpha", "stream": True, "messages": messages}),
        ("/v1/responses", {"model": "alpha", "input": "hi"}),
    ]
    async with aiohttp.ClientSession(headers=headers) as session:
        for path, body in calls:
            async with session.post(server.base_url + path, json=body) as response:
                assert response.status == 200, await response.text()
                await response.read()
    store = await settle(server, 10)
    counts = {t: await store.count_matching(0, 4e9, RequestFilter(team=t)) for t in TEAMS}
    assert counts == {"green": 4, "red": 4, "blue": 2}
