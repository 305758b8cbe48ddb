"""Helpers shared by test modules. Fixtures live in conftest.py (pytest finds them
without imports); everything a test module imports comes from here, so no test
module imports another one or conftest."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp
import pytest

from tierwise import ChatRequest, Gateway, Message, RequestRecord, parse_config
from tierwise.config import GatewayConfig
from tierwise.store import from_pusd

if TYPE_CHECKING:
    import openai
    from redis.asyncio import Redis

    from tierwise.server.run import Running
    from tierwise.state.redis import RedisOptions
    from tierwise.store import Store
    from tierwise.testing import FakeUpstream

CHEAP_PRICE = {"input": "0.15", "output": "0.60"}
STRONG_PRICE = {"input": "2.50", "output": "10.00"}
OUTCOMES_FIXTURE = Path(__file__).parent / "fixtures" / "outcomes_small.csv"

GatewayFactory = Callable[..., Gateway]


# --- Gateway configurations -------------------------------------------------------------


def gateway_config(base_url: str, **overrides: Any) -> GatewayConfig:
    return parse_config(gateway_data(base_url, **overrides))


def gateway_data(base_url: str, **overrides: Any) -> dict[str, Any]:
    """Cheap tier (two OpenAI-style deployments), strong tier (OpenAI, then
    Anthropic), route `auto` starting cheap, small backoffs for fast tests."""
    v1 = base_url + "/v1"
    timeout = {"connect_s": 2, "total_s": 5}
    cheap = {"price": CHEAP_PRICE, "context_window": 8192, "timeout": timeout}
    data: dict[str, Any] = {
        "deployments": {
            "mini": {"model": "cheap-model", "api_base": v1, **cheap},
            "mini-b": {"model": "cheap-b-model", "api_base": v1, **cheap},
            "big": {
                "model": "strong-model",
                "api_base": v1,
                "price": STRONG_PRICE,
                "timeout": timeout,
            },
            "claude": {
                "provider": "anthropic",
                "model": "claude-model",
                "api_base": base_url,
                "api_key": "sk-ant-test",
                "price": {"input": "3", "output": "15"},
                "timeout": timeout,
            },
        },
        "tiers": {"cheap": ["mini"], "strong": ["big"]},
        "routes": {"auto": {"router": {"kind": "fixed"}, "baseline": "big"}},
        "fallback": {
            "backoff": {"base_s": 0.01, "max_s": 0.05, "max_retry_after_s": 2},
            "breaker": {"failure_threshold": 3, "cooldown_s": 0.2},
        },
    }
    for key, value in overrides.items():
        data[key] = value
    return data


# --- Clocks -----------------------------------------------------------------------------


class ManualClock:
    """A gateway clock the test moves: `now()` is `at` plus whatever `offset()` says
    (e.g. a function of how many requests an upstream has seen); `sleep` advances
    `at` without waiting."""

    def __init__(self, offset: Callable[[], float] = lambda: 0.0, at: float = 0.0) -> None:
        self.at, self._offset = at, offset
        self.slept: list[float] = []

    def now(self) -> float:
        return self.at + self._offset()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += seconds
        await asyncio.sleep(0)


# --- PostgreSQL and Redis: skip without them, fail instead under CI ---------------------

# The shared services; a machine with them elsewhere points the tests there.
POSTGRES = os.environ.get("TIERWISE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TIERWISE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    """`data` as `tmp_path`/tierwise.yaml, for commands and servers that read a file."""
    import yaml

    path = tmp_path / "tierwise.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def provider_data(base_url: str, name: str, deployment: dict[str, Any]) -> dict[str, Any]:
    """A config whose cheap tier is the provider `deployment` (named `name`) with an
    OpenAI-compatible backup on the fake upstream as the strong tier, a `fixed` route
    `auto` and quick backoff."""
    backup = {
        "model": "backup-model",
        "api_base": base_url + "/v1",
        "price": {"input": "1", "output": "2"},
    }
    return {
        "deployments": {name: deployment, "backup": backup},
        "tiers": {"cheap": [name], "strong": ["backup"]},
        "routes": {"auto": {"router": {"kind": "fixed"}}},
        "fallback": {"backoff": {"base_s": 0.01, "max_s": 0.05, "max_retry_after_s": 2}},
    }


def trail(record: RequestRecord) -> list[tuple[str, str | None]]:
    """Each attempt of `record`: its deployment and what moved the request on."""
    return [(a.deployment, a.trigger) for a in record.attempts]


async def fault_falls_back(
    upstream: FakeUpstream, gateway: Gateway, fault: str, trigger: str, deployment: str
) -> None:
    """`fault` from `deployment`'s model, answered and streamed, is the `trigger` on
    its attempt and the backup answers (an auth fault is checked answered only: the
    deployment cools down after it)."""
    model = gateway.deployments[deployment].model
    request = ChatRequest([Message("user", "hello")], model="auto")
    upstream.add_fault(fault, model=model)
    result = await gateway.chat(request)
    assert trail(result.record) == [(deployment, trigger), ("backup", None)]
    if trigger == "auth":
        return
    upstream.add_fault(fault, model=model)
    stream = await gateway.stream(request)
    assert "".join([d.text async for d in stream]).startswith("Answer from backup-model")
    assert trail(stream.record) == [(deployment, trigger), ("backup", None)]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_service(reason: str) -> NoReturn:
    """Skip the test for a service this machine lacks, or fail it when `CI` is set
    (a CI run must not pass by skipping what it was meant to test)."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: required services must be present)", pytrace=False)
    pytest.skip(reason)


_postgres_errors: dict[str, str | None] = {}


async def require_postgres(dsn: str = POSTGRES) -> str:
    """`dsn` once a connection to it succeeds; otherwise skip or fail the test."""
    if dsn not in _postgres_errors:
        import asyncpg

        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            _postgres_errors[dsn] = f"{type(exc).__name__}: {exc}"
        else:
            await conn.close()
            _postgres_errors[dsn] = None
    error = _postgres_errors[dsn]
    if error is not None:
        missing_service(f"no PostgreSQL at {dsn}: {error}")
    return dsn


async def shared_client(url: str = REDIS_URL) -> Redis:
    """A client of the shared Redis once it answers a PING; otherwise skip or fail."""
    pytest.importorskip("redis")
    from redis.exceptions import RedisError

    from tierwise.state.redis import redis_client

    client = redis_client(url, timeout_s=5.0)  # generous: a loaded machine is not an outage
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        return client
    await client.aclose()
    missing_service(f"no Redis at {url}: {error}")


async def require_redis(url: str = REDIS_URL) -> str:
    """`url` once the Redis there answers; otherwise skip or fail the test."""
    client = await shared_client(url)
    await client.aclose()
    return url


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        missing_service("redis-server is not on PATH")
    return found


# --- Redis helpers ----------------------------------------------------------------------


def unique_options(**overrides: Any) -> RedisOptions:
    from tierwise.state.redis import RedisOptions

    return RedisOptions(namespace=f"test-{uuid.uuid4().hex[:12]}", **overrides)


async def drop_namespace(client: Redis, options: RedisOptions) -> None:
    keys = [key async for key in client.scan_iter(match=options.key("*"), count=500)]
    if keys:
        await client.delete(*keys)


async def both_ready(client: Redis, namespace: str, count: int = 2) -> None:
    """Wait until `count` child processes have pushed to `<namespace>:ready` (each
    does so just before it blocks on `<namespace>:go`), then clear the list."""
    ready = namespace + ":ready"

    async def arrived() -> bool:
        return int(await client.llen(ready)) >= count

    await eventually(arrived, 60.0, f"{count} child processes ready")
    await client.delete(ready)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Block until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listened on port {port} in {timeout_s} s") from None
            time.sleep(0.02)


class RedisServer:
    """A throwaway `redis-server` on its own port that a test may stop and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self, paused: bool) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)


def own_redis_server() -> Iterator[RedisServer]:
    """The body of an `own_redis` fixture: a started server, stopped afterwards."""
    redis_server_binary()
    server = RedisServer()
    server.start()
    yield server
    if server.proc is not None:
        server.pause(False)
    server.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail loudly after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout_s} s"
        await asyncio.sleep(0.02)


async def until(
    check: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll a plain predicate until it holds; fail loudly after `timeout_s`."""

    async def holds() -> bool:
        return check()

    await eventually(holds, timeout_s, what)


# --- Gateway processes ------------------------------------------------------------------


class Replica:
    """`tierwise serve` in a child process on a free port (picked again when another
    process took the port between choosing and binding it)."""

    def __init__(self, config: Path, log: Path, *options: str) -> None:
        self._config, self._log_path, self._options = config, log, options
        self._log = log.open("wb")
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "tierwise", "serve", "--config", str(self._config)]
        command += ["--port", str(self.port), *self._options]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    async def ready(self, limit_s: float = 90.0) -> None:
        deadline = time.monotonic() + limit_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    assert b"address already in use" in self._log_path.read_bytes(), (
                        "replica exited during start-up"
                    )
                    self._start()
                try:
                    async with session.get(self.url + "/ready") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("replica did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


# --- Report traffic: requests with faults, and what the client saw ----------------------

ROUTES = {"auto": {"router": "heuristic", "baseline": "big", "checks": ["punt"]}}
FALLBACK = {
    "backoff": {"base_s": 0.01, "max_s": 0.05, "max_retry_after_s": 2},
    "breaker": {"failure_threshold": 100, "cooldown_s": 0.2},
}
TRAFFIC = [
    ("auto", "hello"),
    ("auto", "hello again"),
    ("auto", "hi [[fault=500 model=cheap-model]]"),
    ("auto", "yo [[fault=punt model=cheap-model]]"),
    ("auto", "all down [[fault=500]]"),
    ("auto", "nobody knows [[fault=punt]]"),
    ("strong", "straight to the strong tier"),
]


@dataclass
class Sent:
    """What the client saw: one entry per request, from the response headers."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, headers: Any, cost: str | None = None) -> None:
        self.rows.append(
            {
                "id": headers["x-request-id"],
                "route": headers["x-tierwise-route"],
                "tier": headers["x-tierwise-tier"] or None,
                "status": headers["x-tierwise-status"],
                "calls": int(headers["x-tierwise-attempts"]),
                "cost": Decimal(cost if cost is not None else headers["x-tierwise-cost-usd"]),
            }
        )

    def where(self, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.rows if all(r[k] == v for k, v in match.items())]

    def id_of(self, index: int) -> str:
        return str(self.rows[index]["id"])


async def send_traffic(base_url: str, api_key: str = "x") -> Sent:
    """The TRAFFIC list, one streamed request, then a rate-limited one last
    (its cooldown would otherwise skip the cheap tier for later requests)."""
    import openai

    sent = Sent()
    async with openai.AsyncOpenAI(
        base_url=base_url + "/v1", api_key=api_key, max_retries=0
    ) as client:
        for model, prompt in TRAFFIC:
            await _ask(client, sent, model, prompt)
        await _stream(base_url, sent, api_key)
        await _ask(client, sent, "auto", "busy [[fault=429 model=cheap-model]]")
    return sent


async def _ask(client: openai.AsyncOpenAI, sent: Sent, model: str, prompt: str) -> None:
    import openai

    messages: Any = [{"role": "user", "content": prompt}]
    try:
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=messages)
    except openai.APIStatusError as exc:
        sent.add(exc.response.headers)
        return
    sent.add(raw.headers)


async def _stream(base_url: str, sent: Sent, api_key: str) -> None:
    import orjson
    from multidict import CIMultiDict

    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
    async with (
        aiohttp.ClientSession(headers={"authorization": f"Bearer {api_key}"}) as session,
        session.post(base_url + "/v1/chat/completions", json=body) as response,
    ):
        text = await response.text()
        summary = next(line for line in text.splitlines() if line.startswith(": tierwise "))
        bill = orjson.loads(summary.removeprefix(": tierwise "))
        headers = CIMultiDict(response.headers)
        headers["x-tierwise-attempts"] = str(bill["attempts"])
        headers["x-tierwise-status"] = bill["status"]
        sent.add(headers, cost=bill["cost_usd"])


async def post_feedback(base_url: str, scores: list[tuple[str, Any]], api_key: str = "x") -> None:
    async with aiohttp.ClientSession(headers={"authorization": f"Bearer {api_key}"}) as session:
        for rid, score in scores:
            async with session.post(
                base_url + "/v1/feedback", json={"request_id": rid, "score": score}
            ) as response:
                assert response.status == 200, await response.text()


async def settle(live: Running, expected: int, timeout_s: float = 10.0) -> Store:
    """Flush the writer until the store holds `expected` requests."""
    from tierwise.server.app import WRITER

    writer = live.app[WRITER]
    assert writer is not None

    async def landed() -> bool:
        await writer.flush()
        return await writer.store.count_requests() >= expected

    await eventually(landed, timeout_s, f"{expected} requests in the store")
    return writer.store


# --- Offline evaluation -----------------------------------------------------------------


def eval_app() -> Any:
    """A Typer app with the `eval` and `calibrate` commands."""
    import typer

    from tierwise.cli.evaluation import calibrate_command, eval_command

    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("calibrate")(calibrate_command)
    return app


def assert_billed_once(
    detail: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    headers: Mapping[str, str],
    upstream: FakeUpstream,
    *,
    blank_billed: bool,
    plain: bool,
) -> Mapping[str, Any]:
    """A request whose cheap deployment `mini` failed before another answered: every
    call logged once, the failed ones billed only for a blank answer, the request
    costing the sum of its attempts (and saying so in its header when not streamed).
    The attempt that answered."""
    *failed, answered = attempts
    assert failed and {a["deployment"] for a in failed} == {"mini"}
    assert answered["deployment"] == detail["final_deployment"] == headers["x-tierwise-model"]
    assert detail["calls"] == len(attempts) == int(headers["x-tierwise-attempts"])
    assert sum(a["called"] for a in attempts) == upstream.count()
    blank = [from_pusd(a["cost_pusd"]) for a in failed]
    assert all(c > 0 for c in blank) if blank_billed else not any(blank)
    each = sum(a["cost_pusd"] for a in attempts)
    assert detail["cost_pusd"] == detail["attempts_pusd"] == each
    if plain:
        assert Decimal(headers["x-tierwise-cost-usd"]) == from_pusd(each)
    return answered


# --- Learning from the log --------------------------------------------------------------

NAMES = ("Ada", "Bob", "Cyd", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lou")
LONG = "Here is a careful and complete answer to your question."
"""An answer long enough for the `min_length` check; "no" fails it."""


def math_prompt(i: int) -> str:
    """A prompt of the kind the learning tests' cheap tier answers badly."""
    return f"Compute {i} times {i + 7} plus {3 * i} and show each arithmetic step"


def chat_prompt(i: int) -> str:
    """A prompt of the kind the learning tests' cheap tier answers well."""
    return f"Say a warm hello to {NAMES[i % len(NAMES)]} number {i} from the team"


async def opened_with_prompts(url: str) -> Store:
    """The store at `url`, migrated, keeping prompts (outcome rows need them)."""
    from tierwise.store import Capture, open_store

    store = open_store(url, Capture(prompts=True))
    await store.migrate()
    return store
