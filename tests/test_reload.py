"""Live config reload: `POST /admin/reload` and SIGHUP load, check and swap in the
config file; requests already running finish on the old config; a broken file keeps
the old config serving; replicas reloading one file converge on one config hash."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from tests.helpers import Replica, eventually, gateway_data
from tierwise.config import load_config
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

USER_KEY, ADMIN_KEY = "sk-user-1", "sk-admin-1"
SERVER = {
    "api_keys": [{"name": "app", "key": USER_KEY}],
    "admin_keys": [{"name": "ops", "key": ADMIN_KEY}],
}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def config_data(base_url: str, **overrides: Any) -> dict[str, Any]:
    return gateway_data(base_url, server=SERVER, **overrides)


@pytest.fixture
def config_file(tmp_path: Path, upstream: FakeUpstream) -> Path:
    return write(tmp_path / "tierwise.yaml", config_data(upstream.base_url))


@pytest.fixture
async def live(config_file: Path) -> AsyncIterator[Running]:
    async with running(load_config(config_file), path=config_file) as server:
        yield server


def auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


async def call(
    url: str, method: str, path: str, key: str | None = ADMIN_KEY, body: Any = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body, headers=auth(key)) as response,
    ):
        return response.status, await response.json()


async def chat(url: str, model: str, prompt: str = "hi", key: str = USER_KEY) -> tuple[int, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    return await call(url, "POST", "/v1/chat/completions", key, body)


async def test_a_reload_serves_the_new_routes_and_drops_the_removed_ones(
    live: Running, config_file: Path, upstream: FakeUpstream
) -> None:
    _, before = await call(live.base_url, "GET", "/admin/config")
    routes = {"fast": {"router": {"kind": "fixed"}, "baseline": "big"}}
    write(config_file, config_data(upstream.base_url, routes=routes))
    assert (await chat(live.base_url, "fast"))[0] == 404

    status, body = await call(live.base_url, "POST", "/admin/reload", key=USER_KEY)
    assert status == 403 and body["error"]["message"] == "an API key is not an admin key"
    assert (await call(live.base_url, "POST", "/admin/reload", key=None))[0] == 401
    assert (await chat(live.base_url, "fast"))[0] == 404

    status, body = await call(live.base_url, "POST", "/admin/reload")
    assert status == 200 and body["status"] == "reloaded" and body["by"] == "ops"
    assert body["previous_hash"] == before["config_hash"] != body["config_hash"]
    status, answer = await chat(live.base_url, "fast")
    assert status == 200 and answer["model"] == "cheap-model"
    status, answer = await chat(live.base_url, "auto")
    assert status == 404 and answer["error"]["code"] == "model_not_found"
    _, after = await call(live.base_url, "GET", "/admin/config")
    assert after["config_hash"] == body["config_hash"] and after["generation"] == 1

    status, again = await call(live.base_url, "POST", "/admin/reload")
    assert status == 200 and again["status"] == "unchanged"
    assert again["config_hash"] == body["config_hash"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("tiers:\n  cheap: [mini\n", "invalid YAML"),
        ({"tiers": {"cheap": ["nowhere"], "strong": ["big"]}}, "nowhere"),
        ({"routes": {"auto": {"router": {"kind": "no-such-router"}}}}, "no-such-router"),
    ],
)
async def test_a_broken_file_answers_400_with_the_reason_and_the_old_config_serves(
    live: Running, config_file: Path, upstream: FakeUpstream, change: Any, reason: str
) -> None:
    _, before = await call(live.base_url, "GET", "/admin/config")
    if isinstance(change, str):
        config_file.write_text(change)
    else:
        write(config_file, config_data(upstream.base_url, **change))

    status, body = await call(live.base_url, "POST", "/admin/reload")
    assert status == 400 and reason in body["error"]["message"]
    assert before["config_hash"] in body["error"]["message"]
    status, answer = await chat(live.base_url, "auto")
    assert status == 200 and answer["model"] == "cheap-model"
    _, after = await call(live.base_url, "GET", "/admin/config")
    assert after["config_hash"] == before["config_hash"] and after["generation"] == 0
    assert after["last_reload"]["status"] == "failed"
    assert reason in after["last_reload"]["error"]


NEW_USER_KEY, NEW_ADMIN_KEY = "sk-user-2", "sk-admin-2"


async def test_a_reload_applies_api_and_admin_keys_at_once(
    live: Running, config_file: Path, upstream: FakeUpstream
) -> None:
    server = {
        "api_keys": [{"name": "app2", "key": NEW_USER_KEY}],
        "admin_keys": [{"name": "ops2", "key": NEW_ADMIN_KEY}],
    }
    write(config_file, gateway_data(upstream.base_url, server=server))
    assert (await call(live.base_url, "GET", "/admin/config", NEW_ADMIN_KEY))[0] == 401
    assert (await chat(live.base_url, "auto", key=NEW_USER_KEY))[0] == 401

    status, body = await call(live.base_url, "POST", "/admin/reload")

    assert status == 200 and body["status"] == "reloaded" and body["restart_required"] == []
    status, refused = await chat(live.base_url, "auto")
    assert status == 401 and refused["error"]["message"] == "invalid API key"
    assert (await chat(live.base_url, "auto", key=NEW_USER_KEY))[0] == 200
    assert (await call(live.base_url, "GET", "/admin/config", ADMIN_KEY))[0] == 401
    status, now = await call(live.base_url, "GET", "/admin/config", NEW_ADMIN_KEY)
    assert status == 200 and now["last_reload"]["by"] == "ops"
    status, refused = await call(live.base_url, "GET", "/admin/config", NEW_USER_KEY)
    assert status == 403 and refused["error"]["message"] == "an API key is not an admin key"


async def test_a_changed_port_or_store_waits_for_a_restart_and_the_server_keeps_serving(
    live: Running,
    config_file: Path,
    upstream: FakeUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_url = f"sqlite:///{tmp_path / 'hunter2-elsewhere.db'}"
    server = {**SERVER, "port": 9999, "max_body_bytes": 65536}
    write(config_file, gateway_data(upstream.base_url, server=server, store={"url": secret_url}))

    status, body = await call(live.base_url, "POST", "/admin/reload")

    later = ["server.max_body_bytes", "server.port", "store.url"]
    assert status == 200 and body["status"] == "reloaded" and body["restart_required"] == later
    assert "hunter2" not in str(body) and "9999" not in str(body)
    assert "restart to apply server.max_body_bytes, server.port, store.url" in caplog.text
    assert (await chat(live.base_url, "auto"))[0] == 200
    _, status_now = await call(live.base_url, "GET", "/admin/config")
    assert status_now["last_reload"]["restart_required"] == later
    status, again = await call(live.base_url, "POST", "/admin/reload")
    assert again["status"] == "unchanged" and again["restart_required"] == later


async def stream_models(url: str, prompt: str) -> tuple[list[str], bool]:
    """The `model` of every chunk of a streamed answer, and whether it ended."""
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    models, done = [], False
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=body, headers=auth(USER_KEY)) as response,
    ):
        assert response.status == 200
        async for line in response.content:
            data = line.decode().strip().removeprefix("data: ")
            if data == "[DONE]":
                done = True
            elif data.startswith("{"):
                models.append(orjson.loads(data)["model"])
    return models, done


async def test_a_request_running_during_a_reload_finishes_on_the_old_config(
    live: Running, config_file: Path, upstream: FakeUpstream
) -> None:
    streamed = asyncio.create_task(stream_models(live.base_url, "slow [[latency=1.5]]"))
    await eventually(lambda: _arrived(upstream), what="the streamed request upstream")
    deployments = config_data(upstream.base_url)["deployments"]
    deployments["mini"]["model"] = "cheap-b-model"
    write(config_file, config_data(upstream.base_url, deployments=deployments))

    status, body = await call(live.base_url, "POST", "/admin/reload")
    assert status == 200 and body["status"] == "reloaded"
    status, answer = await chat(live.base_url, "auto")
    assert status == 200 and answer["model"] == "cheap-b-model"
    _, during = await call(live.base_url, "GET", "/admin/config")
    assert during["draining"] == 1 and not streamed.done()

    models, done = await streamed
    assert done and models and set(models) == {"cheap-model"}

    async def drained() -> bool:
        _, status = await call(live.base_url, "GET", "/admin/config")
        return bool(status["draining"] == 0)

    await eventually(drained, what="the old gateway closed")
    assert (await chat(live.base_url, "auto"))[1]["model"] == "cheap-b-model"


async def _arrived(upstream: FakeUpstream) -> bool:
    return upstream.count() >= 1


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


async def config_hash(replica: Replica) -> str:
    status, body = await call(replica.url, "GET", "/admin/config")
    assert status == 200
    return str(body["config_hash"])


async def test_sighup_reloads_a_running_server(
    tmp_path: Path, upstream: FakeUpstream, replicas: list[Replica]
) -> None:
    path = write(tmp_path / "served.yaml", config_data(upstream.base_url))
    replica = Replica(path, tmp_path / "served.log")
    replicas.append(replica)
    await replica.ready()
    before = await config_hash(replica)
    routes = {"fast": {"router": {"kind": "fixed"}, "baseline": "big"}}
    write(path, config_data(upstream.base_url, routes=routes))

    os.kill(replica.process.pid, signal.SIGHUP)

    async def changed() -> bool:
        return await config_hash(replica) != before

    await eventually(changed, timeout_s=30, what="the reloaded config")
    assert (await chat(replica.url, "fast"))[0] == 200
    assert (await chat(replica.url, "auto"))[0] == 404
    assert replica.process.poll() is None


async def answers_by_pid(url: str, count: int = 40) -> dict[int, set[str]]:
    """The config hashes each worker answered with, over `count` new connections."""
    seen: dict[int, set[str]] = {}
    for _ in range(count):
        _, body = await call(url, "GET", "/admin/config")
        seen.setdefault(body["pid"], set()).add(body["config_hash"])
    return seen


async def test_sighup_to_the_parent_of_workers_reloads_every_worker(
    tmp_path: Path, upstream: FakeUpstream, replicas: list[Replica]
) -> None:
    path = write(tmp_path / "workers.yaml", config_data(upstream.base_url))
    replica = Replica(path, tmp_path / "workers.log", "--workers", "2")
    replicas.append(replica)
    await replica.ready()

    async def both_serving() -> bool:
        return len(await answers_by_pid(replica.url, 10)) == 2

    await eventually(both_serving, timeout_s=60, what="both workers serving")
    before = await config_hash(replica)
    routes = {"fast": {"router": {"kind": "fixed"}, "baseline": "big"}}
    write(path, config_data(upstream.base_url, routes=routes))

    os.kill(replica.process.pid, signal.SIGHUP)

    async def all_reloaded() -> bool:
        seen = await answers_by_pid(replica.url)
        return len(seen) == 2 and all(before not in hashes for hashes in seen.values())

    await eventually(all_reloaded, timeout_s=30, what="every worker reloaded")
    assert replica.process.poll() is None


async def test_two_replicas_reloading_one_file_converge(
    tmp_path: Path, upstream: FakeUpstream, replicas: list[Replica]
) -> None:
    path = write(tmp_path / "shared.yaml", config_data(upstream.base_url))
    replicas.extend(Replica(path, tmp_path / f"replica{i}.log") for i in range(2))
    await asyncio.gather(*(r.ready() for r in replicas))
    first = {await config_hash(r) for r in replicas}
    assert len(first) == 1
    routes = {"fast": {"router": {"kind": "fixed"}, "baseline": "big"}}
    write(path, config_data(upstream.base_url, routes=routes))

    outcomes = [await call(r.url, "POST", "/admin/reload") for r in replicas]

    assert [status for status, _ in outcomes] == [200, 200]
    after = {await config_hash(r) for r in replicas}
    assert len(after) == 1 and after != first
    assert after == {body["config_hash"] for _, body in outcomes}
    for replica in replicas:
        assert (await chat(replica.url, "fast"))[0] == 200


EXPERIMENT = {
    "route": "auto",
    "unit": "user",
    "control": "always_strong",
    "variants": {"routed": {}, "always_strong": {"target": "strong"}},
}


async def arms(url: str) -> set[str]:
    seen = set()
    async with aiohttp.ClientSession() as session:
        for i in range(20):
            body = {
                "model": "auto",
                "user": f"u{i}",
                "messages": [{"role": "user", "content": "hi"}],
            }
            async with session.post(
                url + "/v1/chat/completions", json=body, headers=auth(USER_KEY)
            ) as response:
                assert response.status == 200
                seen.add(response.headers.get("x-tierwise-experiment", ""))
    return seen


async def test_an_experiment_started_over_the_api_runs_on_after_a_reload(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    store = {"url": f"sqlite:///{tmp_path / 'log.db'}"}
    path = write(tmp_path / "stored.yaml", config_data(upstream.base_url, store=store))
    async with running(load_config(path), path=path) as live:
        status, _ = await call(
            live.base_url, "POST", "/admin/experiments", body={"name": "ab", **EXPERIMENT}
        )
        assert status == 201
        routes = {
            "auto": {"router": {"kind": "fixed"}, "baseline": "big"},
            "fast": {"router": {"kind": "fixed"}, "baseline": "big"},
        }
        fast = {**EXPERIMENT, "route": "fast", "enabled": False}
        changed = config_data(upstream.base_url, store=store, routes=routes)
        write(path, {**changed, "experiments": {"on-fast": fast}})

        status, body = await call(live.base_url, "POST", "/admin/reload")

        assert status == 200 and body["status"] == "reloaded"
        assert await arms(live.base_url) == {"ab/routed", "ab/always_strong"}
        _, listed = await call(live.base_url, "GET", "/admin/experiments")
        assert {e["name"]: e["status"] for e in listed["data"]} == {
            "ab": "running",
            "on-fast": "stopped",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.get(live.base_url + "/dashboard", headers=auth(USER_KEY)) as response,
        ):
            page = await response.text()
        assert response.status == 200 and "on-fast" in page and "ab" in page
