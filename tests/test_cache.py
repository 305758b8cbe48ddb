"""The response cache: exact hits through the gateway server and the official SDKs,
streamed replays in both wire formats, what is not cached, TTLs, Redis shared by two
gateways, and the semantic cache on the paraphrase fixture."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.helpers import ManualClock, drop_namespace, gateway_config, shared_client
from tierwise import Gateway
from tierwise.cache import CachedAnswer, MemoryResponseCache, request_key
from tierwise.record import RequestRecord
from tierwise.server.app import GATEWAY
from tierwise.server.run import Running, running
from tierwise.state.redis import RedisOptions
from tierwise.testing import FakeUpstream
from tierwise.types import ChatRequest, ChatResponse, Choice, Message

PARAPHRASES = Path(__file__).parent / "fixtures" / "paraphrases.jsonl"
CACHED = {"router": {"kind": "fixed"}, "baseline": "big", "cache": {"ttl_s": 60}}
ROUTES = {
    "auto": CACHED,
    "warm": {**CACHED, "cache": {"ttl_s": 60, "cache_nonzero_temperature": True}},
    "plain": {"router": {"kind": "fixed"}, "baseline": "big"},
    "checked": {**CACHED, "checks": ["punt"], "tiers": ["cheap"]},
}


def ask(text: str) -> Any:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def server(upstream: FakeUpstream) -> AsyncIterator[Running]:
    async with running(gateway_config(upstream.base_url, routes=ROUTES)) as live:
        yield live


@pytest.fixture
def records(server: Running) -> list[RequestRecord]:
    found: list[RequestRecord] = []
    server.app[GATEWAY].sinks.append(found.append)
    return found


@pytest.fixture
async def oai(server: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    url = server.base_url + "/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def claude(server: Running) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key="unused", max_retries=0
    ) as client:
        yield client


async def test_second_identical_request_is_a_hit(
    server: Running,
    oai: openai.AsyncOpenAI,
    upstream: FakeUpstream,
    records: list[RequestRecord],
) -> None:
    create = oai.chat.completions.with_raw_response.create
    first = await create(model="auto", messages=ask("hello there"), temperature=0)
    second = await create(
        model="auto", messages=ask("hello there"), temperature=0, user="someone-else"
    )
    assert upstream.count() == 1
    assert first.headers["x-tierwise-cache"] == "miss"
    assert second.headers["x-tierwise-cache"] == "hit"
    assert Decimal(first.headers["x-tierwise-cost-usd"]) > 0
    assert Decimal(second.headers["x-tierwise-cost-usd"]) == 0
    answer = second.parse()
    assert answer.choices[0].message.content == "Answer from cheap-model: hello there"
    assert (
        answer.model == "cheap-model"
        and answer.id == "chatcmpl-" + second.headers["x-tierwise-request-id"]
    )
    miss, hit = records
    assert (miss.cache, hit.cache, hit.status) == ("miss", "hit", "ok")
    assert hit.cost.total_usd == 0 and hit.calls == []
    assert hit.cost.savings_usd == hit.cost.baseline_usd == miss.cost.baseline_usd > 0
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base_url + "/metrics") as response,
    ):
        text = await response.text()
    assert 'tierwise_cache_requests_total{result="hit",route="auto"} 1.0' in text
    assert 'tierwise_cache_requests_total{result="miss",route="auto"} 1.0' in text


async def test_hits_are_logged_in_the_request_log(
    upstream: FakeUpstream, request_log: Path
) -> None:
    config = gateway_config(upstream.base_url, routes=ROUTES)
    async with running(config) as live:
        url = live.base_url + "/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
            for _ in range(2):
                await client.chat.completions.create(
                    model="auto", messages=ask("log me"), temperature=0
                )
            await client.chat.completions.create(model="plain", messages=ask("log me"))
    with sqlite3.connect(request_log) as db:
        rows = db.execute(
            "SELECT route, cache, cost_pusd, savings_pusd FROM requests ORDER BY created_at"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("auto", "miss"), ("auto", "hit"), ("plain", None)]
    assert rows[1][2] == 0 and rows[1][3] > 0


async def test_streamed_hits_replay_in_both_formats(
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    upstream: FakeUpstream,
    records: list[RequestRecord],
) -> None:
    messages = ask("tell me a longer story about caching please")
    stream = await oai.chat.completions.create(
        model="auto",
        messages=messages,
        max_tokens=100,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, chunks, usage = "", 0, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            chunks += 1
        usage = chunk.usage or usage
    assert text.startswith("Answer from cheap-model: tell me") and chunks > 2
    assert records[-1].cache == "miss"
    async with oai.chat.completions.with_streaming_response.create(
        model="auto", messages=messages, max_tokens=100, temperature=0, stream=True
    ) as raw:
        assert raw.headers["x-tierwise-cache"] == "hit"
        replayed = ""
        pieces = 0
        async for chunk in await raw.parse():
            if chunk.choices:
                replayed += chunk.choices[0].delta.content or ""
                pieces += 1 if chunk.choices[0].delta.content else 0
    assert replayed == text and pieces > 1
    async with claude.messages.stream(
        model="auto", max_tokens=100, messages=messages, extra_body={"temperature": 0}
    ) as events:
        claude_text = "".join([t async for t in events.text_stream])
        final = await events.get_final_message()
    assert claude_text == text and final.stop_reason == "end_turn"
    assert usage is not None and final.usage.output_tokens == usage.completion_tokens
    assert upstream.count() == 1
    assert [r.cache for r in records] == ["miss", "hit", "hit"]
    assert records[-1].cost.total_usd == 0 and records[-1].cost.baseline_usd > 0


async def test_plain_anthropic_request_hits_the_entry_a_stream_stored(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, upstream: FakeUpstream
) -> None:
    stream = await oai.chat.completions.create(
        model="auto", messages=ask("stored by a stream"), max_tokens=100, temperature=0, stream=True
    )
    async for _ in stream:
        pass
    raw = await claude.messages.with_raw_response.create(
        model="auto",
        max_tokens=100,
        messages=ask("stored by a stream"),
        extra_body={"temperature": 0},
    )
    block = (await raw.parse()).content[0]
    assert raw.headers["x-tierwise-cache"] == "hit"
    assert block.type == "text" and block.text == "Answer from cheap-model: stored by a stream"
    assert upstream.count() == 1


async def test_nonzero_temperature_is_not_cached_unless_the_route_says_so(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    create = oai.chat.completions.with_raw_response.create
    for temperature in (0.7, 0.7):
        raw = await create(model="auto", messages=ask("be creative"), temperature=temperature)
        assert raw.headers["x-tierwise-cache"] == "miss"
    absent = await create(model="auto", messages=ask("be creative"))
    assert absent.headers["x-tierwise-cache"] == "miss"
    assert upstream.count() == 3
    first = await create(model="warm", messages=ask("be creative"), temperature=0.7)
    second = await create(model="warm", messages=ask("be creative"), temperature=0.7)
    assert (first.headers["x-tierwise-cache"], second.headers["x-tierwise-cache"]) == (
        "miss",
        "hit",
    )
    plain = await create(model="plain", messages=ask("be creative"), temperature=0)
    assert "x-tierwise-cache" not in plain.headers
    assert upstream.count() == 5


async def test_a_failed_check_answer_is_not_cached(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream, records: list[RequestRecord]
) -> None:
    create = oai.chat.completions.with_raw_response.create
    prompt = ask("hard one [[fault=punt]]")
    for _ in range(2):
        raw = await create(model="checked", messages=prompt, temperature=0)
        assert raw.headers["x-tierwise-cache"] == "miss"
    assert upstream.count() == 2
    assert all(r.status != "ok" for r in records)


async def test_ttl_expiry_with_an_injected_clock(upstream: FakeUpstream) -> None:
    clock = ManualClock(at=1000.0)
    config = gateway_config(upstream.base_url, routes=ROUTES)
    request = ChatRequest([Message("user", "tick")], model="auto", temperature=0)
    async with Gateway(config, clock=clock) as gateway:
        assert (await gateway.chat(request)).record.cache == "miss"
        clock.at += 59
        assert (await gateway.chat(request)).record.cache == "hit"
        clock.at += 1
        assert (await gateway.chat(request)).record.cache == "miss"
    assert upstream.count() == 2


async def test_redis_cache_is_shared_by_two_gateways(
    upstream: FakeUpstream, redis_url: str
) -> None:
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    state = {"backend": "redis", "redis_url": redis_url, "namespace": namespace}
    config = gateway_config(upstream.base_url, routes=ROUTES, state=state)
    request = ChatRequest([Message("user", "shared answer")], model="auto", temperature=0)
    client = await shared_client(redis_url)
    try:
        async with Gateway(config) as one, Gateway(config) as two:
            first = await one.chat(request)
            second = await two.chat(request)
            keys = [k async for k in client.scan_iter(match=f"tierwise:{{{namespace}}}:cache:*")]
        assert (first.record.cache, second.record.cache) == ("miss", "hit")
        assert second.response.text() == first.response.text()
        assert upstream.count() == 1 and len(keys) == 1
        assert 0 < int(await client.pttl(keys[0])) <= 60_000
    finally:
        await drop_namespace(client, RedisOptions(namespace=namespace))
        await client.aclose()


def test_key_covers_what_changes_the_answer() -> None:
    base = ChatRequest([Message("user", "hi")], model="auto", temperature=0)
    key = request_key("auto", base)
    same = [
        base.with_changes(user="u", metadata={"a": "b"}),
        base.with_changes(messages=[Message("user", [{"type": "text", "text": "hi"}])]),
    ]
    different = [
        base.with_changes(temperature=0.5),
        base.with_changes(max_tokens=10),
        base.with_changes(tools=[{"type": "function", "function": {"name": "f"}}]),
        base.with_changes(response_format={"type": "json_object"}),
        base.with_changes(extra={"seed": 3}),
        base.with_changes(messages=[Message("user", "hi!")]),
    ]
    assert all(request_key("auto", r) == key for r in same)
    assert len({request_key("auto", r) for r in different} | {key}) == len(different) + 1
    assert request_key("other", base) != key


def test_memory_cache_evicts_the_least_recently_used() -> None:
    now = [0.0]
    cache = MemoryResponseCache(2, lambda: now[0])
    answer = CachedAnswer(
        ChatResponse("", "m", [Choice(0, Message("assistant", "x"))]), "d", "t", 0
    )
    cache.store("a", answer, 10)
    cache.store("b", answer, 10)
    assert cache.lookup("a") is answer
    cache.store("c", answer, 10)
    assert cache.lookup("b") is None and cache.lookup("a") is answer and len(cache) == 2
    now[0] = 10
    assert cache.lookup("a") is None


def _pairs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PARAPHRASES.read_text().splitlines() if line.strip()]


async def test_semantic_cache_on_fixture_pairs(upstream: FakeUpstream) -> None:
    pytest.importorskip("numpy")
    from tierwise.routing.embedding import make_embedder

    threshold = 0.955
    routes = {
        "auto": {**CACHED, "cache": {"ttl_s": 60, "semantic": {"threshold": threshold}}},
    }
    embedder = make_embedder("static")
    pairs = _pairs()
    a = embedder.embed([p["a"] for p in pairs])
    b = embedder.embed([p["b"] for p in pairs])
    scored = [(float(x @ y), p) for x, y, p in zip(a, b, pairs, strict=True)]
    hits = [p for s, p in scored if p["paraphrase"] and s >= threshold + 0.005][:3]
    anchors = {p["a"] for p in hits}
    misses = [
        p
        for s, p in scored
        if not p["paraphrase"] and s < threshold - 0.005 and p["a"] not in anchors
    ][:3]
    assert len(hits) == 3 and len(misses) == 3
    async with Gateway(gateway_config(upstream.base_url, routes=routes)) as gateway:
        for pair in hits + misses:
            first = ChatRequest([Message("user", pair["a"])], model="auto", temperature=0)
            second = first.with_changes(messages=[Message("user", pair["b"])])
            stored = await gateway.chat(first)
            answered = await gateway.chat(second)
            expected = "hit" if pair["paraphrase"] else "miss"
            assert answered.record.cache == expected, pair
            if pair["paraphrase"]:
                assert answered.response.text() == stored.response.text()
            other = second.with_changes(max_tokens=7)
            assert (await gateway.chat(other)).record.cache == "miss"
    assert upstream.count() == 3 * 2 + 3 * 3


async def test_nothing_is_cached_unless_asked_and_never_by_meaning(
    upstream: FakeUpstream,
) -> None:
    """With no cache block a route caches nothing; with one, an exact cache only: the
    closest paraphrase pair of the fixture misses unless `semantic` is set."""
    pair = next(p for p in _pairs() if p["paraphrase"])
    routes = {
        "auto": {"router": {"kind": "fixed"}, "baseline": "big"},
        "cached": CACHED,
    }
    async with Gateway(gateway_config(upstream.base_url, routes=routes)) as gateway:
        for route, expected in (("auto", None), ("cached", "miss")):
            first = ChatRequest([Message("user", pair["a"])], model=route, temperature=0)
            await gateway.chat(first)
            again = await gateway.chat(first)
            paraphrase = first.with_changes(messages=[Message("user", pair["b"])])
            assert (await gateway.chat(paraphrase)).record.cache == expected
            assert again.record.cache == (None if route == "auto" else "hit")
    assert upstream.count() == 3 + 2


async def test_tool_calls_replay_from_the_cache(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    messages = ask("find it [[tool=lookup]]")
    first = await oai.chat.completions.create(
        model="auto", messages=messages, tools=tools, temperature=0
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    stream = await oai.chat.completions.create(
        model="auto", messages=messages, tools=tools, temperature=0, stream=True
    )
    names, arguments, finish = [], "", None
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if delta.function and delta.function.name:
                names.append(delta.function.name)
            arguments += (delta.function.arguments or "") if delta.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert call.type == "function" and names == [call.function.name] == ["lookup"]
    assert arguments == call.function.arguments and finish == "tool_calls"
    assert upstream.count() == 1
