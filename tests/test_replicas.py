"""Two gateway processes sharing Redis: breakers, budgets that never overspend,
and a Redis outage in the middle of traffic."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.helpers import (
    Replica,
    eventually,
    free_port,
    redis_server_binary,
    until,
    wait_for_port,
)
from tierwise.testing import FakeUpstream
from tierwise.tokens import count_message_tokens
from tierwise.types import Message

PROMPT = "What are your opening hours on public holidays?"
MAX_TOKENS = 50


def write_config(tmp_path: Path, name: str, upstream: str, redis_url: str, **extra: Any) -> Path:
    config: dict[str, Any] = {
        "deployments": {
            "mini": {
                "model": "cheap-model",
                "api_base": upstream + "/v1",
                "price": {"input": "0.15", "output": "0.60"},
            },
            "big": {
                "model": "strong-model",
                "api_base": upstream + "/v1",
                "price": {"input": "2.50", "output": "10.00"},
            },
        },
        "tiers": {"cheap": ["mini"], "strong": ["big"]},
        "routes": {"auto": {"router": "fixed", "baseline": "big"}},
        "state": {
            "backend": "redis",
            "redis_url": redis_url,
            "namespace": f"test-{uuid.uuid4().hex[:8]}",
        },
        "store": {"url": f"sqlite:///{tmp_path / (name + '.db')}"},
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def replicas_of(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Replica] = []

    async def start(config: Path, count: int = 2) -> list[Replica]:
        group = [Replica(config, tmp_path / f"replica{len(started) + i}.log") for i in range(count)]
        started.extend(group)
        await asyncio.gather(*(r.ready() for r in group))
        return group

    yield start
    for replica in started:
        replica.stop()


async def ask(
    session: aiohttp.ClientSession,
    replica: Replica,
    prompt: str = PROMPT,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = {
        "model": "auto",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt}],
    }
    async with session.post(replica.url + "/v1/chat/completions", json=body) as response:
        return response.status, dict(response.headers), await response.json()


async def test_a_breaker_opened_through_one_replica_is_open_in_the_other(
    tmp_path: Path, replicas_of: Any, redis_url: str
) -> None:
    async with FakeUpstream() as upstream:
        config = write_config(tmp_path, "breaker", upstream.base_url, redis_url)
        first, second = await replicas_of(config)
        async with aiohttp.ClientSession() as session:
            status, headers, _ = await ask(
                session, first, "hi [[fault=429 retry_after=60 model=cheap-model]]"
            )
            assert status == 200 and headers["x-tierwise-model"] == "big"
            before = upstream.count("cheap-model")
            status, headers, _ = await ask(session, second, "hello")
            assert status == 200 and headers["x-tierwise-model"] == "big"
            assert headers["x-tierwise-attempts"] == "1"
            assert upstream.count("cheap-model") == before
            async with session.get(second.url + "/metrics") as response:
                metrics = await response.text()
        assert 'tierwise_breaker_state{deployment="mini"} 2.0' in metrics


async def test_two_hundred_requests_against_a_budget_for_fifty(
    tmp_path: Path, replicas_of: Any, redis_url: str
) -> None:
    prompt_tokens = count_message_tokens([Message("user", PROMPT)])
    worst = (prompt_tokens * Decimal("0.15") + MAX_TOKENS * Decimal("0.60")) / 10**6
    limit = worst * 50
    async with FakeUpstream() as upstream:
        config = write_config(
            tmp_path,
            "budget",
            upstream.base_url,
            redis_url,
            tiers={"cheap": ["mini"]},
            budgets={"all": {"limit_usd": str(limit), "period": "day"}},
        )
        first, second = await replicas_of(config)
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(ask(session, (first, second)[i % 2]) for i in range(200))
            )
    served = [Decimal(h["x-tierwise-cost-usd"]) for status, h, _ in results if status == 200]
    refused = [body for status, _, body in results if status == 402]
    spent = sum(served, Decimal(0))
    overspend = max(Decimal(0), spent - limit)
    print(
        f"budget {limit} USD; served {len(served)}, refused {len(refused)}, "
        f"spent {spent} USD, overspend {overspend} USD (worst case one request {worst})"
    )
    assert len(served) + len(refused) == 200
    assert len(served) >= 50 and refused
    assert spent <= limit + worst
    assert "budget" in refused[0]["error"]["message"]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, Any]]:
    port = free_port()
    command = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    state: dict[str, subprocess.Popen[bytes]] = {}

    def start() -> None:
        state["p"] = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for_port(port)

    def stop() -> None:
        state["p"].terminate()
        state["p"].wait(timeout=10)

    start()
    yield port, (start, stop)
    stop()


async def test_redis_outage_loses_no_request(
    tmp_path: Path, replicas_of: Any, own_redis: tuple[int, Any]
) -> None:
    port, (start_redis, stop_redis) = own_redis
    async with FakeUpstream() as upstream:
        config = write_config(tmp_path, "outage", upstream.base_url, f"redis://127.0.0.1:{port}/0")
        first, second = await replicas_of(config)
        statuses: list[int] = []
        async with aiohttp.ClientSession() as session:
            for phase in ("before", "down", "after"):
                if phase == "down":
                    stop_redis()
                if phase == "after":
                    start_redis()
                    for replica in (first, second):
                        await eventually(partial(redis_is_up, session, replica), 30, "Redis back")
                batch = await asyncio.gather(
                    *(ask(session, (first, second)[i % 2]) for i in range(40))
                )
                statuses += [status for status, _, _ in batch]
    assert statuses == [200] * 120
    async with aiohttp.ClientSession() as session, session.get(first.url + "/metrics") as response:
        metrics = await response.text()
    assert 'tierwise_state_redis_up{component="health"} 1.0' in metrics
    assert 'tierwise_state_redis_failures{component="health"} 0.0' not in metrics
    logs = "".join((tmp_path / f"replica{i}.log").read_text() for i in range(2))
    assert "unreachable" in logs.lower() or "unavailable" in logs.lower()


async def test_serve_with_two_workers_shares_one_port(tmp_path: Path, redis_url: str) -> None:
    async with FakeUpstream() as upstream:
        config = write_config(tmp_path, "workers", upstream.base_url, redis_url)
        replica = Replica(config, tmp_path / "workers.log", "--workers", "2")
        try:
            await replica.ready()
            children = subprocess.run(
                ["pgrep", "-P", str(replica.process.pid)],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            async with aiohttp.ClientSession() as session:
                results = await asyncio.gather(*(ask(session, replica) for _ in range(20)))
        finally:
            replica.stop()
    assert len(children) >= 2
    assert [status for status, _, _ in results] == [200] * 20
    await until(
        lambda: not any(_is_worker(pid) for pid in children), 30, "workers exiting with the parent"
    )


async def redis_is_up(session: aiohttp.ClientSession, replica: Replica) -> bool:
    """Whether the replica's health state reaches Redis (a scrape also drives its probe)."""
    async with session.get(replica.url + "/metrics") as response:
        return 'tierwise_state_redis_up{component="health"} 1.0' in await response.text()


def _is_worker(pid: str) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
