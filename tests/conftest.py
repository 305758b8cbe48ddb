"""Shared fixtures: a fake upstream on a real socket, and gateways pointed at it."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tierwise import Gateway, parse_config
from tierwise.config import GatewayConfig
from tierwise.testing import FakeUpstream

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
CHEAP_PRICE = {"input": "0.15", "output": "0.60"}
STRONG_PRICE = {"input": "2.50", "output": "10.00"}


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


def gateway_config(base_url: str, **overrides: Any) -> GatewayConfig:
    return parse_config(gateway_data(base_url, **overrides))


def gateway_data(base_url: str, **overrides: Any) -> dict[str, Any]:
    """Cheap tier (two OpenAI-style deployments), strong tier (OpenAI, then
    Anthropic), route `auto` starting cheap, small backoffs for fast tests."""
    v1 = base_url + "/v1"
    timeout = {"connect_s": 2, "total_s": 5}
    data: dict[str, Any] = {
        "deployments": {
            "mini": {
                "model": "cheap-model",
                "api_base": v1,
                "price": CHEAP_PRICE,
                "context_window": 8192,
                "timeout": timeout,
            },
            "mini-b": {
                "model": "cheap-b-model",
                "api_base": v1,
                "price": CHEAP_PRICE,
                "context_window": 8192,
                "timeout": timeout,
            },
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


GatewayFactory = Callable[..., Gateway]


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A request-log URL: the test's own SQLite file, or its own schema in the real
    PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
        return
    import asyncpg

    schema = f"tw_test_{uuid.uuid4().hex[:10]}"
    yield f"{POSTGRES}?schema={schema}"
    conn = await asyncpg.connect(POSTGRES)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    """A client of the shared Redis on 127.0.0.1:6379 (the test skips without one)."""
    from tests.test_redis_state import shared_client

    redis = await shared_client()
    yield redis
    await redis.aclose()


@pytest.fixture
async def options(client: Any) -> AsyncIterator[Any]:
    """Redis key options in a namespace of the test's own, deleted afterwards."""
    from tests.test_redis_state import drop_namespace, unique_options

    chosen = unique_options()
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
