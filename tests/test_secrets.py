"""No key string ever leaves the gateway: not in logs (at DEBUG), error bodies,
pages, headers, metrics, the dashboard's data, the request log, or the calls
it makes upstream."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import CHEAP_PRICE, STRONG_PRICE, gateway_config
from tierwise.config import GatewayConfig
from tierwise.errors import ConfigError
from tierwise.gateway import Gateway
from tierwise.server.app import GATEWAY
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

SECRET = "sk-tw-secret-6a1f93c0d2e4b857"
WRONG = "sk-tw-wrong-0f9e8d7c6b5a4321"
UPSTREAM = "sk-upstream-c0ffee1234567890"
HELLO = {"role": "user", "content": "hello"}
CHAT: dict[str, Any] = {"model": "auto", "messages": [HELLO]}
MESSAGES: dict[str, Any] = {"model": "auto", "max_tokens": 20, "messages": [HELLO]}
API_PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/feedback")


def config(base_url: str) -> GatewayConfig:
    """One OpenAI-style and one Anthropic deployment, both with an upstream key."""
    common = {"api_key": UPSTREAM, "timeout": {"connect_s": 2, "total_s": 5}}
    claude = {"provider": "anthropic", "model": "claude-model", "price": STRONG_PRICE}
    deployments: dict[str, dict[str, Any]] = {
        "mini": {"model": "cheap-model", "api_base": base_url + "/v1", "price": CHEAP_PRICE},
        "claude": {**claude, "api_base": base_url},
    }
    return gateway_config(
        base_url,
        deployments={name: {**d, **common} for name, d in deployments.items()},
        tiers={"cheap": ["mini"], "strong": ["claude"]},
        routes={"auto": {"router": {"kind": "fixed"}, "baseline": "claude"}},
        server={"api_keys": [{"name": "team", "key": SECRET}]},
    )


class Seen:
    """Everything the gateway said back, as text."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session, self.base_url = session, base_url
        self.texts: list[str] = []

    async def send(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            body = await response.read()
        self.texts += [body.decode(errors="replace"), str(dict(response.headers))]
        return response

    async def all_routes(self, headers: dict[str, str]) -> list[int]:
        statuses = []
        bodies = (CHAT, MESSAGES, {"request_id": "x", "score": 1})
        for path, body in zip(API_PATHS, bodies, strict=True):
            statuses.append((await self.send("POST", path, json=body, headers=headers)).status)
        for path in ("/v1/models", "/metrics", "/dashboard", "/dashboard/data.json"):
            statuses.append((await self.send("GET", path, headers=headers)).status)
        return statuses


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def wrong_keys(seen: Seen) -> None:
    for headers in (
        bearer(WRONG),
        {"x-api-key": WRONG},
        {"authorization": f"Bearer {SECRET}x"},
        {"authorization": f"Basic {SECRET}"},
        {"authorization": SECRET},
        {"x-api-key": f" {WRONG} "},
    ):
        assert set(await seen.all_routes(headers)) == {401}
    signed_out = await seen.send("POST", "/dashboard/login", data={"key": WRONG})
    assert signed_out.status == 401


async def right_key(seen: Seen, upstream: FakeUpstream) -> None:
    auth = bearer(SECRET)
    ok = await seen.send("POST", "/v1/chat/completions", json=CHAT, headers=auth)
    assert ok.status == 200
    rid = ok.headers["x-request-id"]
    for path, body in zip(API_PATHS[:2], (CHAT, MESSAGES), strict=True):
        stream = await seen.send("POST", path, json={**body, "stream": True}, headers=auth)
        assert stream.status == 200
    for path in API_PATHS:
        for data in (b"{not json", b"[1]", b'{"model": 5}', b'{"model": "nope"}'):
            assert (await seen.send("POST", path, data=data, headers=auth)).status in (400, 404)
    feedback = {"request_id": rid, "score": "up", "comment": "fine"}
    assert (await seen.send("POST", "/v1/feedback", json=feedback, headers=auth)).status == 200
    assert set(await seen.all_routes(auth)) <= {200, 404}
    upstream.set_failure_rate(None, 1.0, fault="auth")
    failed = await seen.send("POST", "/v1/messages", json=MESSAGES, headers={"x-api-key": SECRET})
    assert failed.status == 502 and "attempts" in seen.texts[-2]
    upstream.set_failure_rate(None, 0)


async def dashboard_session(seen: Seen) -> None:
    login = await seen.send("POST", "/dashboard/login", data={"key": SECRET}, allow_redirects=False)
    assert login.status == 303
    cookie = {"cookie": login.headers["set-cookie"].split(";")[0]}
    for path in ("/dashboard", "/dashboard/data.json"):
        assert (await seen.send("GET", path, headers=cookie)).status == 200


async def unhandled_error(seen: Seen, gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while a key is presented: the traceback is logged, the key is not."""

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the gateway fell over")

    monkeypatch.setattr(gateway, "chat", crash)
    for headers in (bearer(SECRET), {"x-api-key": SECRET}):
        status = (
            await seen.send("POST", "/v1/chat/completions", json=CHAT, headers=headers)
        ).status
        assert status == 500
    monkeypatch.undo()


def log_text(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


def stored_text(database: Path) -> str:
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]
    return "\n".join(p.read_bytes().decode(errors="replace") for p in files)


async def test_keys_never_leave_the_gateway(
    upstream: FakeUpstream,
    request_log: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(config(upstream.base_url)) as live, aiohttp.ClientSession() as session:
        seen = Seen(session, live.base_url)
        await wrong_keys(seen)
        await right_key(seen, upstream)
        await dashboard_session(seen)
        await unhandled_error(seen, live.app[GATEWAY], monkeypatch)
    assert stored_text(request_log) and "the gateway fell over" in log_text(caplog.records)
    sent_upstream = "\n".join(f"{r.headers} {r.body}" for r in upstream.requests)
    assert UPSTREAM in sent_upstream
    for key in (SECRET, WRONG):
        assert key not in sent_upstream
    places = {"responses": "\n".join(seen.texts), "logs": log_text(caplog.records)}
    places["request log"] = stored_text(request_log)
    for key in (SECRET, WRONG, UPSTREAM):
        for name, text in places.items():
            assert key not in text, f"{key} found in {name}"


def test_config_reprs_dumps_and_errors_hide_keys(tmp_path: Path) -> None:
    """Keys given in the YAML file or in a `TIERWISE__` override are `SecretStr`s: no
    repr, dump or validation error of the config shows them."""
    from tierwise.config import load_config, reveal

    path = tmp_path / "tierwise.yaml"
    path.write_text(
        "deployments:\n"
        f"  mini: {{model: m, api_base: 'http://127.0.0.1:9/v1', api_key: {UPSTREAM}}}\n"
        "tiers: {cheap: [mini]}\n"
        f"server: {{api_keys: [{{name: team, key: {SECRET}}}]}}\n"
    )
    override = {"TIERWISE__DEPLOYMENTS__MINI__API_KEY": WRONG}
    plain, overridden = load_config(path, environ={}), load_config(path, environ=override)
    key = overridden.deployments["mini"].api_key
    assert key is not None and reveal(key) == WRONG
    shown = [
        text
        for loaded in (plain, overridden)
        for text in (repr(loaded), str(loaded), loaded.model_dump_json(), str(loaded.model_dump()))
    ]
    broken = {"TIERWISE__DEPLOYMENTS__MINI__TIMEOUT__TOTAL_S": "-1", **override}
    for environ in (broken, {"TIERWISE__SERVER__API_KEYS": f'[{{"key": "{SECRET}"}}]'}):
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=environ)
        shown.append(str(info.value))
    for text in shown:
        for secret in (SECRET, WRONG, UPSTREAM):
            assert secret not in text
