"""Virtual keys over real sockets, on SQLite and PostgreSQL: created by the CLI or the
admin API, accepted by every replica on the same store within the refresh interval
with no restart, revoked and rotated the same way, limited to their routes, models
and budget like config keys, and never showing their secret after creation."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

from tests.helpers import eventually, gateway_data, settle
from tierwise import parse_config
from tierwise.cli.main import app as cli
from tierwise.server.dashboard import COOKIE
from tierwise.server.run import Running, running
from tierwise.state.redis import RedisOptions
from tierwise.testing import FakeUpstream

CONFIG_KEY, ADMIN_KEY = "sk-config-key-1", "sk-admin-key-1"
REFRESH_S = 0.3
TINY = "0.000001"
runner = CliRunner()


def server_data(store_url: str, base_url: str) -> dict[str, Any]:
    return gateway_data(
        base_url,
        server={
            "api_keys": [{"name": "cfg", "key": CONFIG_KEY}],
            "admin_keys": [{"name": "ops", "key": ADMIN_KEY}],
            "key_refresh_s": REFRESH_S,
        },
        store={"url": store_url},
    )


@pytest.fixture
async def replicas(
    store_url: str, upstream: FakeUpstream, tmp_path: Path
) -> AsyncIterator[tuple[Path, Running, Running]]:
    """The config file (for the CLI) and two gateways sharing its store."""
    data = server_data(store_url, upstream.base_url)
    path = tmp_path / "tierwise.yaml"
    path.write_text(json.dumps(data))
    config = parse_config(data)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(running(config))
        two = await stack.enter_async_context(running(config))
        yield path, one, two


async def keys_cli(path: Path, *args: str) -> str:
    result = await asyncio.to_thread(
        runner.invoke, cli, ["keys", *args, "--config", str(path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


async def call(
    live: Running, method: str, path: str, key: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, live.base_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def chat(live: Running, key: str, model: str = "auto") -> tuple[int, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    return await call(live, "POST", "/v1/chat/completions", key, body)


async def status_is(live: Running, key: str, wanted: int, model: str = "auto") -> None:
    async def check() -> bool:
        return (await chat(live, key, model))[0] == wanted

    await eventually(check, REFRESH_S * 10 + 3, f"status {wanted} for {model}")


async def test_cli_keys_work_on_every_replica_then_revoke_and_rotate(
    replicas: tuple[Path, Running, Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path, one, two = replicas
    out = await keys_cli(path, "create", "alice", "--team", "red", "--user", "alice@x")
    secret = out.split()[0]
    assert secret.startswith("tw-") and len(secret) > 40
    for live in (one, two):
        await status_is(live, secret, 200)
    assert (await chat(one, CONFIG_KEY))[0] == 200
    listed = await keys_cli(path, "list", "--json")
    (row,) = json.loads(listed)
    assert row["name"] == "alice" and row["team"] == "red" and row["user"] == "alice@x"
    assert secret not in listed and secret[8:20] not in listed

    rotated = json.loads(await keys_cli(path, "rotate", "alice", "--json"))["key"]
    assert rotated != secret
    for live in (one, two):
        await status_is(live, rotated, 200)
        await status_is(live, secret, 401)

    await keys_cli(path, "revoke", "alice")
    for live in (one, two):
        await status_is(live, rotated, 401)
    assert (await chat(two, CONFIG_KEY))[0] == 200

    status, audit = await call(one, "GET", "/admin/keys/events", ADMIN_KEY)
    assert status == 200
    assert [e["action"] for e in audit["data"]] == ["revoke", "rotate", "create"]
    assert all(e["actor"].startswith("cli") and e["created_at"] > 0 for e in audit["data"])
    cli_log = await keys_cli(path, "log")
    for text in (json.dumps(audit), cli_log, caplog.text):
        assert secret not in text and rotated not in text
    assert json.loads(await keys_cli(path, "list", "--json")) == []
    again = await asyncio.to_thread(
        runner.invoke, cli, ["keys", "rotate", "alice", "--config", str(path)]
    )
    assert again.exit_code == 1 and "no live virtual key named 'alice'" in again.output


async def test_admin_api_keys_are_limited_to_their_routes_and_models(
    replicas: tuple[Path, Running, Running],
) -> None:
    _, one, two = replicas
    body = {"name": "narrow", "routes": ["auto"], "models": ["cheap"]}
    status, created = await call(one, "POST", "/admin/keys", ADMIN_KEY, body)
    assert status == 201 and created["key"].startswith("tw-")
    secret = created["key"]
    assert (await chat(one, secret, "auto"))[0] == 200
    assert (await chat(one, secret, "cheap"))[0] == 200
    status, refused = await chat(one, secret, "strong")
    assert status == 403 and "may not use model 'strong'" in refused["error"]["message"]
    await status_is(two, secret, 403, model="big")
    status, listed = await call(two, "GET", "/admin/keys", ADMIN_KEY)
    assert status == 200 and listed["data"][0]["routes"] == ["auto"]
    assert secret not in json.dumps(listed)

    status, _ = await call(one, "POST", "/admin/keys", ADMIN_KEY, body)
    assert status == 409
    status, _ = await call(one, "POST", "/admin/keys", ADMIN_KEY, {"name": "cfg"})
    assert status == 409
    for user_key in (secret, CONFIG_KEY):
        status, refused = await call(one, "GET", "/admin/keys", user_key)
        assert status == 403 and refused["error"]["message"] == "an API key is not an admin key"
        status, _ = await call(one, "POST", "/admin/keys/narrow/revoke", user_key)
        assert status == 403
    status, _ = await call(one, "POST", "/admin/keys/ghost/revoke", ADMIN_KEY)
    assert status == 404


async def test_an_exhausted_budget_refuses_a_virtual_key_as_it_does_a_config_key(
    store_url: str, upstream: FakeUpstream
) -> None:
    data = server_data(store_url, upstream.base_url)
    data["budgets"] = {"key:cfg": {"limit_usd": TINY, "period": "day"}}
    async with running(parse_config(data)) as live:
        body = {"name": "poor", "budget_usd": TINY, "budget_period": "day"}
        status, created = await call(live, "POST", "/admin/keys", ADMIN_KEY, body)
        assert status == 201
        config_status, config_error = await chat(live, CONFIG_KEY)
        virtual_status, virtual_error = await chat(live, created["key"])
        status, rich = await call(live, "POST", "/admin/keys", ADMIN_KEY, {"name": "rich"})
        assert (await chat(live, rich["key"]))[0] == 200
    assert config_status == virtual_status == 402
    assert config_error["error"]["type"] == virtual_error["error"]["type"]
    assert "budget" in virtual_error["error"]["message"]
    assert config_error["error"]["message"] == virtual_error["error"]["message"]


async def test_a_virtual_keys_rate_limit_is_enforced(
    store_url: str, upstream: FakeUpstream
) -> None:
    async with running(parse_config(server_data(store_url, upstream.base_url))) as live:
        body = {"name": "slow", "rpm": 2}
        status, created = await call(live, "POST", "/admin/keys", ADMIN_KEY, body)
        assert status == 201
        statuses = [(await chat(live, created["key"]))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await chat(live, CONFIG_KEY))[0] == 200


async def user_chat(live: Running, key: str, user: str | None) -> tuple[int, Any]:
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    if user is not None:
        body["user"] = user
    return await call(live, "POST", "/v1/chat/completions", key, body)


async def test_a_virtual_keys_user_is_the_user_of_its_requests_that_name_none(
    replicas: tuple[Path, Running, Running],
) -> None:
    path, one, two = replicas
    body = {"name": "alice", "team": "red", "user": "alice@x"}
    status, created = await call(one, "POST", "/admin/keys", ADMIN_KEY, body)
    assert status == 201
    secret = created["key"]
    await status_is(two, secret, 200)
    assert (await user_chat(one, secret, None))[0] == 200
    assert (await user_chat(two, secret, "bob"))[0] == 200
    assert (await user_chat(one, CONFIG_KEY, None))[0] == 200
    await settle(one, 4)
    result = await asyncio.to_thread(
        runner.invoke, cli, ["report", "--by", "user", "--json", "--config", str(path)]
    )
    assert result.exit_code == 0, result.output
    users = {r["name"]: r["requests"] for r in json.loads(result.stdout)["spend"]["user"]}
    assert users == {"alice@x": 2, "bob": 1, None: 1}


async def test_a_virtual_keys_user_spends_in_that_users_budget(
    store_url: str, upstream: FakeUpstream
) -> None:
    data = server_data(store_url, upstream.base_url)
    data["budgets"] = {"user:alice@x": {"limit_usd": TINY, "period": "day"}}
    async with running(parse_config(data)) as live:
        body = {"name": "alice", "user": "alice@x"}
        status, created = await call(live, "POST", "/admin/keys", ADMIN_KEY, body)
        assert status == 201
        assert (await user_chat(live, created["key"], None))[0] == 402
        assert (await user_chat(live, created["key"], "bob"))[0] == 200


# --- Limits shared through Redis by two replicas ----------------------------------------


@pytest.fixture
async def redis_replicas(
    upstream: FakeUpstream, tmp_path: Path, options: RedisOptions, redis_url: str
) -> AsyncIterator[tuple[Running, Running]]:
    """Two gateways sharing one store and one Redis namespace (their budgets and
    rate limits), with no budget or rate limit in config."""
    data = server_data(f"sqlite:///{tmp_path / 'keys.db'}", upstream.base_url)
    data["state"] = {"backend": "redis", "redis_url": redis_url, "namespace": options.namespace}
    config = parse_config(data)
    async with running(config) as one, running(config) as two:
        yield one, two


async def known_everywhere(replicas: tuple[Running, ...], key: str) -> None:
    """Wait until every replica accepts `key` (listing models spends no limit)."""
    for live in replicas:

        async def known(live: Running = live) -> bool:
            return (await call(live, "GET", "/v1/models", key))[0] == 200

        await eventually(known, REFRESH_S * 10 + 3, "the key on every replica")


async def test_a_virtual_keys_rate_limit_holds_across_replicas_sharing_redis(
    redis_replicas: tuple[Running, Running],
) -> None:
    one, two = redis_replicas
    status, created = await call(one, "POST", "/admin/keys", ADMIN_KEY, {"name": "slow", "rpm": 3})
    assert status == 201
    secret = created["key"]
    await known_everywhere((one, two), secret)
    statuses = [(await chat(live, secret))[0] for live in (one, two, one, two, one)]
    assert statuses == [200, 200, 200, 429, 429]
    assert (await chat(two, CONFIG_KEY))[0] == 200


async def billed_chat(live: Running, key: str) -> tuple[int, Decimal]:
    """A chat's status and what it was billed (nothing when refused)."""
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    headers = {"authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(live.base_url + "/v1/chat/completions", json=body, headers=headers) as r,
    ):
        await r.read()
        return r.status, Decimal(r.headers.get("x-tierwise-cost-usd", "0"))


async def test_a_virtual_keys_budget_holds_across_replicas_sharing_redis(
    redis_replicas: tuple[Running, Running],
) -> None:
    one, two = redis_replicas
    budget = Decimal("0.00006")
    body = {"name": "capped", "budget_usd": str(budget), "budget_period": "day"}
    status, created = await call(one, "POST", "/admin/keys", ADMIN_KEY, body)
    assert status == 201
    secret = created["key"]
    await known_everywhere((one, two), secret)
    spent, statuses = Decimal(0), []
    for live in (two, *[one] * 40):
        status, cost = await billed_chat(live, secret)
        statuses.append(status)
        spent += cost
        if status == 402:
            break
    assert statuses[0] == 200 and statuses[-1] == 402 and statuses.count(200) >= 3
    assert 0 < spent <= budget
    assert (await chat(two, secret))[0] == 402
    assert (await chat(two, CONFIG_KEY))[0] == 200


async def test_the_dashboard_needs_a_key_once_only_virtual_keys_exist_and_signs_them_in(
    store_url: str, upstream: FakeUpstream
) -> None:
    data = server_data(store_url, upstream.base_url)
    data["server"] = {**data["server"], "api_keys": []}
    async with running(parse_config(data)) as live:
        body = {"name": "viewer", "team": "red"}
        status, created = await call(live, "POST", "/admin/keys", ADMIN_KEY, body)
        assert status == 201
        dashboard = live.base_url + "/dashboard"
        async with aiohttp.ClientSession() as session:
            async with session.get(dashboard + "/data.json") as anonymous:
                assert anonymous.status == 401
            form = {"key": created["key"]}
            async with session.post(dashboard + "/login", data=form, allow_redirects=False) as r:
                assert r.status == 303
                token = r.cookies[COOKIE].value
            cookie = {"cookie": f"{COOKIE}={token}"}
            async with session.get(dashboard + "/data.json", headers=cookie) as signed_in:
                assert signed_in.status == 200
                assert list((await signed_in.json())["spend"]) == ["team"]
            form = {"key": ADMIN_KEY}
            async with session.post(dashboard + "/login", data=form, allow_redirects=False) as r:
                assert r.status == 303
                cookie = {"cookie": f"{COOKIE}={r.cookies[COOKIE].value}"}
            async with session.get(dashboard, headers=cookie) as admin:
                page = await admin.text()
                assert admin.status == 200 and 'data-testid="table-spend-key"' in page


async def test_virtual_keys_keep_working_when_a_reload_replaces_the_config_keys(
    store_url: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    data = server_data(store_url, upstream.base_url)
    path = tmp_path / "tierwise.yaml"
    path.write_text(json.dumps(data))
    async with running(parse_config(data), path=path) as live:
        status, created = await call(live, "POST", "/admin/keys", ADMIN_KEY, {"name": "bot"})
        assert status == 201
        data["server"] = {**data["server"], "api_keys": [{"name": "cfg2", "key": "sk-cfg-2"}]}
        path.write_text(json.dumps(data))
        status, body = await call(live, "POST", "/admin/reload", ADMIN_KEY)
        assert status == 200 and body["status"] == "reloaded"
        assert (await chat(live, CONFIG_KEY))[0] == 401
        assert (await chat(live, "sk-cfg-2"))[0] == 200
        assert (await chat(live, created["key"]))[0] == 200
        await asyncio.sleep(REFRESH_S * 2)
        assert (await chat(live, created["key"]))[0] == 200
        status, _ = await call(live, "POST", "/admin/keys", ADMIN_KEY, {"name": "cfg2"})
        assert status == 409
