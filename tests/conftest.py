"""Shared fixtures: a fake upstream on a real socket, gateways pointed at it, and the
shared PostgreSQL and Redis (skipped without them, failed without them under `CI`).
Helpers that test modules import live in tests/helpers.py."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.browser import launch
from tests.helpers import (
    GatewayFactory,
    drop_namespace,
    gateway_config,
    opened_with_prompts,
    require_postgres,
    require_redis,
    shared_client,
    unique_options,
)
from tierwise import Gateway
from tierwise.server.run import Running, running
from tierwise.store import Store
from tierwise.testing import FakeUpstream


@pytest.fixture(autouse=True)
def request_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Servers started by a test log requests into the test's own SQLite file."""
    path = tmp_path / "requests.db"
    monkeypatch.setenv("TIERWISE_STORE_URL", f"sqlite:///{path}")
    return path


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(seed=7, retry_after_s=0.2, hang_s=30) as fake:
        yield fake


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The `store_url` store (SQLite, then PostgreSQL), migrated, keeping prompts."""
    opened = await opened_with_prompts(store_url)
    yield opened
    await opened.close()


@pytest.fixture
async def served(upstream: FakeUpstream) -> AsyncIterator[Running]:
    """The gateway server on the standard test config, in front of the fake upstream."""
    async with running(gateway_config(upstream.base_url)) as live:
        yield live


@pytest.fixture
async def oai(served: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official OpenAI client of `served`, without retries."""
    url = served.base_url + "/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def postgres_dsn() -> str:
    """The shared PostgreSQL's DSN, once it accepts a connection."""
    return await require_postgres()


@pytest.fixture
async def redis_url() -> str:
    """The shared Redis's URL, once it answers a PING."""
    return await require_redis()


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A request-log URL: the test's own SQLite file, or its own schema in the real
    PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
        return
    import asyncpg

    dsn = await require_postgres()
    schema = f"tw_test_{uuid.uuid4().hex[:10]}"
    yield f"{dsn}?schema={schema}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    """A client of the shared Redis."""
    redis = await shared_client()
    yield redis
    await redis.aclose()


@pytest.fixture
async def options(client: Any) -> AsyncIterator[Any]:
    """Redis key options in a namespace of the test's own, deleted afterwards; the
    operation timeout is generous, since these tests are not about outages."""
    chosen = unique_options(op_timeout_s=5.0)
    yield chosen
    await drop_namespace(client, chosen)


@pytest.fixture
async def make_gateway(upstream: FakeUpstream) -> AsyncIterator[GatewayFactory]:
    made: list[Gateway] = []

    def make(**overrides: Any) -> Gateway:
        gateway = Gateway(gateway_config(upstream.base_url, **overrides), rng=random.Random(3))
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.aclose()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (the dashboard tests skip without it)."""
    async for chromium in launch():
        yield chromium
