"""With nothing tuned: a hung deployment leaves its fallback time to answer, and
when nothing can be tried the client hears so at once, as a 503 in its own wire
format with a Retry-After, never a 429 it would retry as a rate limit."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from tierwise import parse_config
from tierwise.server.app import GATEWAY
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream


def plain_config(base_url: str, **extra: Any) -> dict[str, Any]:
    """Two deployments and a route, and no timeout, fallback or breaker settings."""
    v1 = base_url + "/v1"
    return {
        "deployments": {
            "primary": {"model": "primary-model", "api_base": v1, "fallbacks": ["backup"]},
            "backup": {"model": "backup-model", "api_base": v1},
        },
        "tiers": {"main": ["primary"], "spare": ["backup"]},
        "routes": {"auto": {"router": "fixed"}},
        **extra,
    }


@pytest.fixture
async def hanging() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(seed=3, hang_s=3600) as fake:
        yield fake


async def test_a_hung_deployment_leaves_its_fallback_time_to_answer(
    hanging: FakeUpstream,
) -> None:
    """No timeouts in the config: the hung primary is given up on in time for
    `backup` to answer within 35 s, streamed or not (the 60 s guard only ends a
    test whose primary is waited on until the 120 s deadline)."""
    hanging.set_failure_rate("primary-model", 1.0, fault="hang")
    async with (
        running(parse_config(plain_config(hanging.base_url))) as server,
        openai.AsyncOpenAI(
            base_url=server.base_url + "/v1", api_key="-", max_retries=0, timeout=200
        ) as client,
    ):
        async with asyncio.timeout(60):
            whole, streamed = await asyncio.gather(
                timed_ask(client, stream=False), timed_ask(client, stream=True)
            )
    for answer, seconds in (whole, streamed):
        assert answer == ("backup-model", "Answer from backup-model: hello")
        assert seconds < 35
    assert hanging.count("primary-model") == 2 and hanging.count("backup-model") == 2


async def timed_ask(client: openai.AsyncOpenAI, *, stream: bool) -> tuple[tuple[str, str], float]:
    """The answer's model and text, and the seconds the client waited for all of it."""
    started = time.monotonic()
    answer = await ask(client, stream=stream)
    return answer, time.monotonic() - started


async def ask(client: openai.AsyncOpenAI, *, stream: bool) -> tuple[str, str]:
    messages: Any = [{"role": "user", "content": "hello"}]
    if not stream:
        reply = await client.chat.completions.create(model="primary", messages=messages)
        return reply.model, reply.choices[0].message.content or ""
    chunks = await client.chat.completions.create(model="primary", messages=messages, stream=True)
    model, text = "", ""
    async for chunk in chunks:
        model = chunk.model
        text += "".join(c.delta.content or "" for c in chunk.choices)
    return model, text


class StoppedClock:
    """A gateway clock that moves only when the test sets `at`: breakers open at a
    known time, and backoffs pass at once."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def ask_auto(client: openai.AsyncOpenAI) -> int:
    """The status of one request to route `auto`."""
    try:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
    except openai.APIStatusError as failed:
        return failed.status_code
    return 200


async def open_primary_breaker(server: Running, upstream: FakeUpstream) -> None:
    """Fail `primary` until its breaker opens (it is skipped); `backup` answers meanwhile."""
    upstream.set_failure_rate("primary-model", 1.0, fault="500")
    async with openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key="-", max_retries=0
    ) as client:
        for _ in range(10):
            calls = upstream.count("primary-model")
            assert await ask_auto(client) == 200
            if upstream.count("primary-model") == calls:
                return
    pytest.fail("primary's breaker never opened")


async def open_every_breaker(server: Running, upstream: FakeUpstream) -> None:
    """Fail every deployment until the default breakers open."""
    upstream.set_failure_rate(None, 1.0, fault="500")
    async with openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key="-", max_retries=0
    ) as client:
        statuses = []
        while 503 not in statuses and len(statuses) < 10:
            statuses.append(await ask_auto(client))
    assert statuses[0] == 502 and statuses[-1] == 503


async def test_an_outage_answers_503_at_once_with_retry_after(upstream: FakeUpstream) -> None:
    """`primary`'s breaker opens at t=1000 and `backup`'s at t=1010, each for the
    default cooldown; refused at t=1012.5, the client is told to come back when the
    earlier of the two half-opens, in whole seconds rounded up."""
    config = parse_config(plain_config(upstream.base_url))
    clock = StoppedClock(1000.0)
    async with running(config) as server:
        server.app[GATEWAY].executor.clock = clock
        await open_primary_breaker(server, upstream)
        clock.at = 1010.0
        await open_every_breaker(server, upstream)
        clock.at = 1012.5
        calls_before = upstream.count()
        async with openai.AsyncOpenAI(
            base_url=server.base_url + "/v1", api_key="-", max_retries=0
        ) as client:
            timed = await asyncio.gather(*(refused_openai(client) for _ in range(20)))
        async with anthropic.AsyncAnthropic(
            base_url=server.base_url, api_key="-", max_retries=0
        ) as claude:
            timed.append(await refused_anthropic(claude))
    assert upstream.count() == calls_before
    # At once: not after sitting out the 30 s cooldown the Retry-After reports.
    assert max(seconds for seconds, _ in timed) < 5
    assert all(1 <= wait <= 30 for _, wait in timed)
    cooldown_s = config.fallback.breaker.cooldown_s
    earliest_half_open = min(1000.0 + cooldown_s, 1010.0 + cooldown_s)
    assert {wait for _, wait in timed} == {math.ceil(earliest_half_open - clock.at)} == {18}


async def refused_openai(client: openai.AsyncOpenAI) -> tuple[float, int]:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )
    error = refused.value
    assert error.status_code == 503, error.message
    body: Any = error.body
    assert body["type"] == "service_unavailable_error" and body["code"] == "service_unavailable"
    assert "no deployment could be called" in body["message"]
    return time.monotonic() - started, int(error.response.headers["retry-after"])


async def refused_anthropic(client: anthropic.AsyncAnthropic) -> tuple[float, int]:
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as refused:
        await client.messages.create(
            model="auto", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
        )
    error = refused.value
    assert error.status_code == 503
    body: Any = error.body
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    return time.monotonic() - started, int(error.response.headers["retry-after"])


async def test_upstream_rate_limits_alone_answer_429(upstream: FakeUpstream) -> None:
    upstream.set_failure_rate(None, 1.0, fault="429")
    async with (
        running(parse_config(plain_config(upstream.base_url))) as server,
        openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="-", max_retries=0) as client,
    ):
        with pytest.raises(openai.RateLimitError) as limited:
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hello"}]
            )
    assert limited.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "guards",
    [
        pytest.param({}, id="breakers"),
        pytest.param({"rate_limits": {"all": {"requests": 1000}}}, id="rate_limit"),
        pytest.param({"budgets": {"all": {"limit_usd": "100", "period": "day"}}}, id="budget"),
    ],
)
async def test_unreachable_redis_failing_closed_is_a_503(
    upstream: FakeUpstream, guards: dict[str, Any]
) -> None:
    state = {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0", "on_unavailable": "closed"}
    extra: dict[str, Any] = {"state": state, **guards}
    async with (
        running(parse_config(plain_config(upstream.base_url, **extra))) as server,
        openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="-", max_retries=0) as client,
    ):
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hello"}]
            )
    assert refused.value.status_code == 503
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert time.monotonic() - started < 5
    assert upstream.count() == 0


async def test_a_refusal_from_every_option_reaches_the_client_as_a_400(
    upstream: FakeUpstream,
) -> None:
    """Both deployments block the prompt: the client gets the provider's own refusal
    as an invalid request in its wire format, not a 502 it would retry."""
    upstream.set_failure_rate(None, 1.0, fault="content_policy")
    async with running(parse_config(plain_config(upstream.base_url))) as server:
        async with openai.AsyncOpenAI(
            base_url=server.base_url + "/v1", api_key="-", max_retries=0
        ) as client:
            with pytest.raises(openai.BadRequestError) as refused:
                await client.chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": "hello"}]
                )
        async with anthropic.AsyncAnthropic(
            base_url=server.base_url, api_key="-", max_retries=0
        ) as claude:
            with pytest.raises(anthropic.BadRequestError) as blocked:
                await claude.messages.create(
                    model="auto", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
                )
    body: Any = refused.value.body
    assert body["code"] == "content_policy_violation"
    assert "filtered due to the prompt triggering" in body["message"]
    assert [a["reason"] for a in body["attempts"]] == ["content_policy", "content_policy"]
    error: Any = blocked.value.body
    assert error["error"]["type"] == "invalid_request_error"
    assert "content policy" in error["error"]["message"]
