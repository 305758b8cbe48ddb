"""Request ids: the gateway's own id keys the log, the client's `x-request-id` is
kept, searchable and echoed; feedback finds a request by either, even right after
its answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import anthropic
import openai
import orjson
import pytest

from tests.helpers import gateway_config
from tierwise.server.app import WRITER
from tierwise.server.run import Running, running
from tierwise.store import Store, from_pusd
from tierwise.store.inspect import select
from tierwise.testing import FakeUpstream

GATEWAY_ID = re.compile(r"^[0-9a-f]{32}$")
CLIENT_ID = "retry-7"
CHAT, FEEDBACK = "/v1/chat/completions", "/v1/feedback"


@pytest.fixture
async def server(upstream: FakeUpstream, store_url: str) -> AsyncIterator[Running]:
    async with running(gateway_config(upstream.base_url, store={"url": store_url})) as live:
        yield live


async def store_of(server: Running) -> Store:
    writer = server.app[WRITER]
    assert writer is not None
    assert await writer.flush()
    return writer.store


async def openai_bill(server: Running, prompt: str) -> tuple[str, Decimal]:
    async with openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key="x", max_retries=0
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": prompt}],
            extra_headers={"x-request-id": CLIENT_ID},
        )
    rid = raw.headers["x-tierwise-request-id"]
    assert raw.headers["x-request-id"] == CLIENT_ID and GATEWAY_ID.match(rid)
    assert raw.parse().id == f"chatcmpl-{rid}"
    return rid, Decimal(raw.headers["x-tierwise-cost-usd"])


async def anthropic_bill(server: Running) -> tuple[str, Decimal]:
    async with anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key="x", max_retries=0
    ) as client:
        raw = await client.messages.with_raw_response.create(
            model="auto",
            max_tokens=64,
            messages=[{"role": "user", "content": "from claude"}],
            extra_headers={"x-request-id": CLIENT_ID},
        )
    rid = raw.headers["x-tierwise-request-id"]
    message = await raw.parse()
    assert raw.headers["x-request-id"] == CLIENT_ID and message.id == f"msg_{rid}"
    return rid, Decimal(raw.headers["x-tierwise-cost-usd"])


async def stream_bill(server: Running) -> tuple[str, Decimal]:
    """A streamed answer: its bill is the `: tierwise {...}` comment at the end."""
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "flow"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.base_url + "/v1/chat/completions",
            json=body,
            headers={"x-request-id": CLIENT_ID},
        ) as response,
    ):
        assert response.headers["x-request-id"] == CLIENT_ID
        text = await response.text()
    summary = next(line for line in text.splitlines() if line.startswith(": tierwise "))
    bill = orjson.loads(summary.removeprefix(": tierwise "))
    assert bill["request_id"] == response.headers["x-tierwise-request-id"]
    assert f'"id":"chatcmpl-{bill["request_id"]}"' in text
    return bill["request_id"], Decimal(bill["cost_usd"])


async def test_requests_reusing_a_client_id_each_keep_their_row_attempts_and_bill(
    server: Running,
) -> None:
    bills = dict(
        [
            await openai_bill(server, "first try [[fault=500 model=cheap-model]]"),
            await openai_bill(server, "second try"),
            await anthropic_bill(server),
            await stream_bill(server),
        ]
    )
    assert len(bills) == 4
    store = await store_of(server)
    rows = await select(
        store,
        "SELECT request_id, cost_pusd, calls FROM requests WHERE client_request_id = {}",
        CLIENT_ID,
    )
    assert {r["request_id"]: from_pusd(r["cost_pusd"]) for r in rows} == bills
    attempts = await select(
        store, "SELECT request_id, SUM(called) AS calls FROM attempts GROUP BY request_id"
    )
    calls = {a["request_id"]: int(a["calls"]) for a in attempts}
    assert calls == {r["request_id"]: r["calls"] for r in rows}
    assert sorted(calls.values()) == [1, 1, 1, 3]
    (total,) = await select(store, "SELECT SUM(cost_pusd) AS total FROM requests")
    assert from_pusd(total["total"]) == sum(bills.values())


async def test_feedback_takes_either_id_and_a_client_id_means_its_newest_request(
    server: Running,
) -> None:
    first, _ = await openai_bill(server, "one")
    second, _ = await openai_bill(server, "two")
    async with aiohttp.ClientSession() as session:
        for given, filed_under in ((CLIENT_ID, second), (first, first), ("unknown-1", None)):
            async with session.post(
                server.base_url + "/v1/feedback", json={"request_id": given, "score": "up"}
            ) as response:
                body = await response.json()
            if filed_under is None:
                assert response.status == 404 and body["error"]["param"] == "request_id"
            else:
                assert response.status == 200 and body["request_id"] == filed_under
    store = await store_of(server)
    rows = await select(store, "SELECT request_id FROM feedback ORDER BY request_id")
    assert sorted(r["request_id"] for r in rows) == sorted([first, second])


async def test_errors_echo_the_client_id_and_carry_the_gateway_id(server: Running) -> None:
    body = {"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    url = server.base_url + "/v1/chat/completions"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers={"x-request-id": CLIENT_ID}) as response:
            assert response.status == 404
            assert response.headers["x-request-id"] == CLIENT_ID
            assert GATEWAY_ID.match(response.headers["x-tierwise-request-id"])
        async with session.post(url, json=body, headers={"x-request-id": "not ok"}) as response:
            own = response.headers["x-tierwise-request-id"]
            assert response.status == 404 and response.headers["x-request-id"] == own


@pytest.fixture
async def busy_server(upstream: FakeUpstream, store_url: str) -> AsyncIterator[Running]:
    """A writer that is nearly always in the middle of writing a small batch."""
    store = {"url": store_url, "batch_size": 2, "flush_interval_s": 0.001}
    async with running(gateway_config(upstream.base_url, store=store)) as live:
        yield live


async def test_feedback_right_after_each_answer_always_finds_it(busy_server: Running) -> None:
    """A few clients, each rating every answer as soon as it arrives: the answer's
    record is then often in the batch being written, neither queued nor committed."""

    async def client_rating_answers(session: aiohttp.ClientSession, client: int) -> list[int]:
        statuses = []
        for i in range(60):
            body = {"model": "auto", "messages": [{"role": "user", "content": f"{client}-{i}"}]}
            async with session.post(busy_server.base_url + CHAT, json=body) as answer:
                assert answer.status == 200
                rating = {"request_id": answer.headers["x-request-id"], "score": 5}
            async with session.post(busy_server.base_url + FEEDBACK, json=rating) as response:
                statuses.append(response.status)
        return statuses

    async with aiohttp.ClientSession() as session:
        runs = await asyncio.gather(*(client_rating_answers(session, c) for c in range(4)))
    statuses = [status for run in runs for status in run]
    assert statuses.count(200) == len(statuses) == 240, sorted(set(statuses))
