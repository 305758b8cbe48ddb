"""The admin API over HTTP: its own keys, experiments created, stopped and started,
bad input answered in the OpenAI error format, the calibration log readable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.helpers import gateway_config
from tierwise.server.app import GATEWAY, WRITER
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

USER_KEY, ADMIN_KEY = "sk-user-1", "sk-admin-1"
SERVER = {
    "api_keys": [{"name": "app", "key": USER_KEY}],
    "admin_keys": [{"name": "ops", "key": ADMIN_KEY}],
}
EXPERIMENT = {
    "name": "ab",
    "route": "auto",
    "unit": "user",
    "control": "always_strong",
    "variants": {"routed": {}, "always_strong": {"target": "strong"}},
}


@pytest.fixture
async def live(upstream: FakeUpstream) -> AsyncIterator[Running]:
    async with running(gateway_config(upstream.base_url, server=SERVER)) as server:
        yield server


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def call(
    live: Running, method: str, path: str, key: str | None = ADMIN_KEY, body: Any = None
) -> tuple[int, Any]:
    headers = auth(key) if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, live.base_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def chat(live: Running, user: str) -> dict[str, str]:
    body = {"model": "auto", "user": user, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            live.base_url + "/v1/chat/completions", json=body, headers=auth(USER_KEY)
        ) as response,
    ):
        assert response.status == 200
        return dict(response.headers)


async def test_api_keys_do_not_open_the_admin_api(live: Running) -> None:
    status, body = await call(live, "GET", "/admin/experiments", key=USER_KEY)
    assert status == 403 and body["error"]["message"] == "an API key is not an admin key"
    status, _ = await call(live, "GET", "/admin/experiments", key=None)
    assert status == 401
    status, body = await call(live, "GET", "/admin/experiments")
    assert status == 200 and body == {"data": []}


async def test_an_experiment_created_over_the_api_splits_traffic_then_stops(
    live: Running,
) -> None:
    status, created = await call(live, "POST", "/admin/experiments", body=EXPERIMENT)
    assert status == 201 and created["status"] == "running"
    seen = {(await chat(live, f"user-{i}"))["x-tierwise-experiment"] for i in range(20)}
    assert seen == {"ab/routed", "ab/always_strong"}
    status, _ = await call(live, "POST", "/admin/experiments", body=EXPERIMENT)
    assert status == 409
    status, stopped = await call(
        live, "POST", "/admin/experiments/ab/stop", body={"serving": "routed", "reason": "ship"}
    )
    assert status == 200 and stopped["serving"] == "routed" and stopped["reason"] == "ship"
    after = [await chat(live, f"user-{i}") for i in range(10)]
    assert {h["x-tierwise-tier"] for h in after} == {"cheap"}
    assert all("x-tierwise-experiment" not in h for h in after)
    status, report = await call(live, "GET", "/admin/experiments/ab")
    assert status == 200 and report["status"] == "stopped"
    status, started = await call(live, "POST", "/admin/experiments/ab/start")
    assert status == 200 and started["status"] == "running"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"control": "nope"}, "control 'nope' is not one of"),
        ({"variants": {"only": {}}}, "at least two variants"),
        ({"unit": "planet"}, "unit"),
        ({"route": "missing"}, "unknown route, tier or deployment 'missing'"),
    ],
)
async def test_bad_experiments_get_a_clear_error(
    live: Running, change: dict[str, Any], message: str
) -> None:
    status, body = await call(live, "POST", "/admin/experiments", body={**EXPERIMENT, **change})
    assert status == 400
    assert message in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"


async def test_unknown_experiments_and_bad_stops_are_refused(live: Running) -> None:
    status, body = await call(live, "GET", "/admin/experiments/none")
    assert status == 404 and "no experiment named 'none'" in body["error"]["message"]
    await call(live, "POST", "/admin/experiments", body=EXPERIMENT)
    status, body = await call(live, "POST", "/admin/experiments/ab/stop", body={"serving": "x"})
    assert status == 400 and "serving must be one of" in body["error"]["message"]
    status, body = await call(live, "GET", "/admin/experiments/ab?bootstrap=lots")
    assert status == 400 and body["error"]["param"] == "bootstrap"


async def test_the_calibration_log_and_drift_need_settings(live: Running) -> None:
    status, body = await call(live, "GET", "/admin/calibrations")
    assert status == 200 and body == {"data": []}
    status, body = await call(live, "POST", "/admin/drift/auto")
    assert status == 404 and "no drift settings" in body["error"]["message"]


async def test_without_admin_keys_the_admin_api_is_closed_even_to_loopback(
    upstream: FakeUpstream,
) -> None:
    """API keys set, no admin keys: no key, a user key and no keys at all are refused,
    and no experiment gets created, whatever address the caller comes from."""
    users_only = gateway_config(upstream.base_url, server={"api_keys": SERVER["api_keys"]})
    async with running(users_only) as local:
        for key in (None, USER_KEY):
            status, body = await call(local, "POST", "/admin/experiments", key=key, body=EXPERIMENT)
            assert status == 403 and "server.admin_keys" in body["error"]["message"]
        assert local.app[GATEWAY].experiments.states() == []
        headers = await chat(local, "u1")
        assert "x-tierwise-experiment" not in headers
    async with running(gateway_config(upstream.base_url)) as keyless:
        status, body = await call(keyless, "GET", "/admin/experiments", key=None)
        assert status == 403 and "server.admin_keys" in body["error"]["message"]


async def test_a_user_key_is_never_an_admin_key(live: Running) -> None:
    status, body = await call(live, "POST", "/admin/experiments", key=USER_KEY, body=EXPERIMENT)
    assert status == 403 and body["error"]["message"] == "an API key is not an admin key"
    status, body = await call(live, "POST", "/admin/experiments", key="sk-wrong", body=EXPERIMENT)
    assert status == 401


async def test_the_admin_api_opens_without_a_key_only_when_told_and_says_so(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    config = gateway_config(upstream.base_url, server={"allow_unauthenticated_admin": True})
    with caplog.at_level("WARNING", logger="tierwise.server"):
        async with running(config) as opened:
            status, body = await call(opened, "GET", "/admin/experiments", key=None)
            assert status == 200 and body == {"data": []}
    assert any("ADMIN API OPEN WITHOUT A KEY" in r.getMessage() for r in caplog.records)


async def test_the_dashboard_shows_each_experiment_plainly(live: Running) -> None:
    await call(live, "POST", "/admin/experiments", body=EXPERIMENT)
    for i in range(10):
        await chat(live, f"user-{i}")
    await live.app[WRITER].flush()  # type: ignore[union-attr]
    async with (
        aiohttp.ClientSession() as session,
        session.get(live.base_url + "/dashboard", headers=auth(USER_KEY)) as response,
    ):
        page = await response.text()
    assert response.status == 200
    assert 'data-testid="experiment-ab-status">running' in page
    assert "routed saves" in page and "always_strong" in page


async def test_metrics_count_requests_per_variant(live: Running) -> None:
    await call(live, "POST", "/admin/experiments", body=EXPERIMENT)
    for i in range(6):
        await chat(live, f"user-{i}")
    async with (
        aiohttp.ClientSession() as session,
        session.get(live.base_url + "/metrics", headers=auth(USER_KEY)) as response,
    ):
        text = await response.text()
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tierwise_experiment_requests_total{")
    ]
    assert sum(counted) == 6
    assert 'tierwise_experiment_cost_usd_total{experiment="ab",variant="routed"}' in text
