"""A route's checks judge streamed answers as they judge whole ones: with the
default hold-back an answer is judged before the client sees it, a longer one is
marked as judged on its prefix only, and a rejected stream is billed. Logprobs the
gateway asked for itself never reach a client that did not ask for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.helpers import gateway_config
from tierwise.server.app import WRITER
from tierwise.server.run import Running, running
from tierwise.store.inspect import select
from tierwise.testing import FakeUpstream

PUNT_ROUTE = {"auto": {"router": "fixed", "checks": ["punt"], "baseline": "big"}}
QUESTION = [{"role": "user", "content": "what is the airspeed of a swallow"}]


@pytest.fixture
async def punt_server(upstream: FakeUpstream) -> AsyncIterator[Running]:
    async with running(gateway_config(upstream.base_url, routes=PUNT_ROUTE)) as server:
        yield server


def client_of(server: Running) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="-", max_retries=0)


async def read_stream(client: openai.AsyncOpenAI, messages: Any) -> tuple[str, dict[str, str]]:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=messages, stream=True
    )
    text = ""
    async for chunk in raw.parse():
        text += "".join(c.delta.content or "" for c in chunk.choices)
    return text, dict(raw.headers)


async def test_a_streamed_punt_escalates_like_an_unstreamed_one(
    upstream: FakeUpstream, punt_server: Running
) -> None:
    async with client_of(punt_server) as client:
        upstream.add_fault("punt", model="cheap-model")
        whole = await client.chat.completions.with_raw_response.create(
            model="auto", messages=QUESTION
        )
        upstream.add_fault("punt", model="cheap-model")
        text, headers = await read_stream(client, QUESTION)
    assert whole.parse().choices[0].message.content == text
    assert text.startswith("Answer from strong-model")
    for seen in (dict(whole.headers), headers):
        assert seen["x-tierwise-tier"] == "strong" and seen["x-tierwise-status"] == "ok"
        assert seen["x-tierwise-checked"] == "complete" and seen["x-tierwise-attempts"] == "2"


async def test_a_rejected_streamed_attempt_is_billed(
    upstream: FakeUpstream, punt_server: Running
) -> None:
    async with client_of(punt_server) as client:
        upstream.add_fault("punt", model="cheap-model")
        _, headers = await read_stream(client, QUESTION)
    (rejected, served), cost = await attempts_of(punt_server, headers)
    assert rejected["outcome"] == "rejected" and rejected["trigger"] == "quality_check"
    assert rejected["input_tokens"] > 0 and rejected["output_tokens"] > 0
    assert rejected["cost_pusd"] > 0 and served["outcome"] == "ok"
    assert cost == rejected["cost_pusd"] + served["cost_pusd"]


async def test_a_streamed_low_confidence_answer_escalates_like_an_unstreamed_one(
    upstream: FakeUpstream,
) -> None:
    """The cheap answer's logprobs put its confidence under the route's threshold:
    with the default hold-back the stream is judged before the client sees it, and
    moves on to the strong tier just as the whole answer does, the rejected attempt
    billed for its tokens both ways."""
    routes = {"auto": {"router": "fixed", "confidence": {"kind": "logprob", "threshold": 0.5}}}
    unsure = [{"role": "user", "content": "hi [[logprob=-2.5 model=cheap-model]]"}]
    async with (
        running(gateway_config(upstream.base_url, routes=routes)) as server,
        client_of(server) as client,
    ):
        whole = await client.chat.completions.with_raw_response.create(
            model="auto", messages=unsure
        )
        text, headers = await read_stream(client, unsure)
        billed = [
            await attempts_of(server, dict(whole.headers)),
            await attempts_of(server, headers),
        ]
    assert whole.parse().choices[0].message.content == text
    assert text.startswith("Answer from strong-model")
    for seen in (dict(whole.headers), headers):
        assert seen["x-tierwise-tier"] == "strong" and seen["x-tierwise-status"] == "ok"
        assert seen["x-tierwise-attempts"] == "2"
    assert headers["x-tierwise-checked"] == whole.headers["x-tierwise-checked"]
    for rows, cost in billed:
        rejected, served = rows
        assert rejected["deployment"] == "mini" and served["deployment"] == "big"
        assert rejected["outcome"] == "rejected" and rejected["trigger"] == "low_confidence"
        assert rejected["input_tokens"] > 0 and rejected["output_tokens"] > 0
        assert rejected["cost_pusd"] > 0 and served["outcome"] == "ok"
        assert cost == rejected["cost_pusd"] + served["cost_pusd"]
    assert billed[0] == billed[1]


async def attempts_of(server: Running, headers: dict[str, str]) -> tuple[list[Any], int]:
    """The logged attempts of the request `headers` answered, and its logged cost."""
    writer = server.app[WRITER]
    assert writer is not None
    await writer.flush()
    rid = headers["x-tierwise-request-id"]
    rows = await select(
        writer.store,
        "SELECT deployment, outcome, trigger, input_tokens, output_tokens, cost_pusd"
        " FROM attempts WHERE request_id = {} ORDER BY seq",
        rid,
    )
    (request,) = await select(
        writer.store, "SELECT cost_pusd FROM requests WHERE request_id = {}", rid
    )
    return rows, request["cost_pusd"]


async def test_an_answer_longer_than_the_hold_back_is_marked_as_judged_on_its_prefix(
    punt_server: Running,
) -> None:
    reply = " ".join(["word"] * 800)
    long_answer = [{"role": "user", "content": f'tell me [[reply="{reply}"]]'}]
    async with client_of(punt_server) as client:
        text, headers = await read_stream(client, long_answer)
    assert text.split() == reply.split()
    assert headers["x-tierwise-checked"] == "prefix" and headers["x-tierwise-tier"] == "cheap"


async def test_a_route_without_checks_streams_at_once_and_says_so(upstream: FakeUpstream) -> None:
    async with (
        running(gateway_config(upstream.base_url)) as server,
        client_of(server) as client,
    ):
        _, headers = await read_stream(client, QUESTION)
    assert headers["x-tierwise-checked"] == "none"


async def test_logprobs_reach_only_clients_that_asked(upstream: FakeUpstream) -> None:
    confidence = {"kind": "logprob", "threshold": 0.01}
    routes = {"auto": {"router": "fixed", "confidence": confidence}}
    async with (
        running(gateway_config(upstream.base_url, routes=routes)) as server,
        client_of(server) as client,
    ):
        plain = await client.chat.completions.create(model="auto", messages=QUESTION)
        asked = await client.chat.completions.create(model="auto", messages=QUESTION, logprobs=True)
        chunks = await client.chat.completions.create(model="auto", messages=QUESTION, stream=True)
        streamed = [c.choices[0].logprobs async for c in chunks if c.choices]
    assert all(r.body.get("logprobs") is True for r in upstream.requests)
    assert plain.choices[0].logprobs is None
    assert asked.choices[0].logprobs is not None and asked.choices[0].logprobs.content
    assert streamed and all(lp is None for lp in streamed)
