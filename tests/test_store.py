"""The request log on SQLite and on the real PostgreSQL: traffic with faults goes
through the gateway, and the stored rows add up to what was sent."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.helpers import gateway_config
from tierwise.server.app import WRITER
from tierwise.server.run import Running, running
from tierwise.store import from_pusd, open_store
from tierwise.store.inspect import select
from tierwise.store.migrations import MIGRATIONS
from tierwise.testing import FakeUpstream


@pytest.fixture
async def server(upstream: FakeUpstream, store_url: str) -> AsyncIterator[Running]:
    store = {
        "url": store_url,
        "capture_prompts": True,
        "capture_answers": True,
        "redact_patterns": [r"sk-[A-Za-z0-9]+"],
    }
    routes = {"auto": {"router": "heuristic", "baseline": "big", "checks": ["punt"]}}
    async with running(gateway_config(upstream.base_url, store=store, routes=routes)) as live:
        yield live


async def test_traffic_with_faults_is_logged_exactly(
    server: Running, upstream: FakeUpstream, store_url: str
) -> None:
    costs: dict[str, Decimal] = {}
    prompts = [
        "hello",
        "hi [[fault=500 model=cheap-model]]",
        "yo [[fault=punt model=cheap-model]]",
        "my key is sk-abc123 [[fault=429 retry_after=30 model=cheap-model]]",
    ]
    async with openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key="x", max_retries=0
    ) as client:
        for prompt in prompts:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}], user="u1"
            )
            costs[raw.headers["x-request-id"]] = Decimal(raw.headers["x-tierwise-cost-usd"])
        stream = await client.chat.completions.create(
            model="auto", stream=True, messages=[{"role": "user", "content": "stream it"}]
        )
        _ = [chunk async for chunk in stream]
    writer = server.app[WRITER]
    assert writer is not None
    await writer.flush()
    store = writer.store
    rows = {r["request_id"]: r for r in await select(store, "SELECT * FROM requests")}
    assert len(rows) == 5
    for rid, cost in costs.items():
        assert from_pusd(rows[rid]["cost_pusd"]) == cost
        assert rows[rid]["user_id"] == "u1" and rows[rid]["status"] == "ok"
    attempts = await select(
        store,
        "SELECT request_id, seq, deployment, trigger, called FROM attempts "
        "ORDER BY request_id, seq",
    )
    triggers = sorted(a["trigger"] for a in attempts if a["trigger"])
    assert triggers == [
        "circuit_open",
        "quality_check",
        "rate_limited",
        "upstream_5xx",
        "upstream_5xx",
    ]
    assert sum(a["called"] for a in attempts) == upstream.count()
    secret = next(r for r in rows.values() if r["prompt"] and "my key is" in r["prompt"])
    assert "sk-abc123" not in secret["prompt"] and "[REDACTED]" in secret["prompt"]
    assert secret["answer"].startswith("Answer from strong-model")
    totals = await select(store, "SELECT SUM(cost_pusd) AS total, COUNT(*) AS n FROM requests")
    assert from_pusd(totals[0]["total"]) >= sum(costs.values())


async def test_feedback_joins_to_route_and_tier(server: Running) -> None:
    async with openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key="x", max_retries=0
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "rate me"}]
        )
    rid = raw.headers["x-request-id"]
    async with aiohttp.ClientSession() as session:
        for score in ("up", 4, "down"):
            async with session.post(
                server.base_url + "/v1/feedback", json={"request_id": rid, "score": score}
            ) as response:
                assert response.status == 200, await response.text()
        async with session.post(
            server.base_url + "/v1/feedback", json={"request_id": "nope", "score": "up"}
        ) as response:
            assert response.status == 404
        async with session.post(
            server.base_url + "/v1/feedback", json={"request_id": rid, "score": 9}
        ) as response:
            body = await response.json()
            assert response.status == 400 and body["error"]["param"] == "score"
        async with session.get(server.base_url + "/metrics") as response:
            metrics = await response.text()
    assert 'tierwise_feedback_total{route="auto",tier="cheap"} 3.0' in metrics
    assert 'tierwise_feedback_score_total{route="auto",tier="cheap"} 1.75' in metrics
    writer = server.app[WRITER]
    assert writer is not None
    joined = await select(
        writer.store,
        "SELECT r.route, r.final_tier, f.score FROM feedback f JOIN requests r "
        "ON r.request_id = f.request_id ORDER BY f.score",
    )
    assert [(j["route"], j["final_tier"], j["score"]) for j in joined] == [
        ("auto", "cheap", 0.0),
        ("auto", "cheap", 0.75),
        ("auto", "cheap", 1.0),
    ]


async def test_records_survive_a_restart_and_retention_prunes(
    store_url: str, upstream: FakeUpstream
) -> None:
    config = gateway_config(upstream.base_url, store={"url": store_url})
    async with (
        running(config) as live,
        openai.AsyncOpenAI(base_url=live.base_url + "/v1", api_key="x", max_retries=0) as client,
    ):
        for i in range(30):
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": f"q{i}"}]
            )
    store = open_store(store_url)
    await store.migrate()
    assert await store.count_requests() == 30
    assert await store.prune(before=4_102_444_800.0) == 30
    assert await select(store, "SELECT request_id FROM attempts") == []
    await store.close()


def test_processes_migrating_one_sqlite_file_together_apply_each_migration_once(
    tmp_path: Path,
) -> None:
    for round_ in range(3):
        _migrate_together(tmp_path / f"shared{round_}.db", 4)


def _migrate_together(path: Path, count: int) -> None:
    script = (
        "import asyncio, sys\n"
        "from tierwise.store import open_store\n"
        "async def main():\n"
        "    store = open_store(sys.argv[1])\n"
        "    await store.migrate()\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    runs = [subprocess.Popen([sys.executable, "-c", script, f"sqlite:///{path}"]) for _ in range(4)]
    assert [run.wait(timeout=60) for run in runs] == [0, 0, 0, 0]
    with sqlite3.connect(path) as conn:
        applied = [row[0] for row in conn.execute("SELECT id FROM schema_migrations")]
    assert sorted(applied) == sorted(name for name, _ in MIGRATIONS)
