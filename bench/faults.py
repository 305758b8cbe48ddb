"""What clients see when deployments hang or fail, with the gateway's default timeout,
fallback and breaker settings: no config below sets any of them, unless a scenario says so.

The gateway server (`tierwise.server.run.running`, a real loopback socket), the fake
upstream (`tierwise.testing.FakeUpstream`) and the client run in this one process, on one
event loop, so latencies include the client's and the fake's own work.

  1  hung primary: `primary` hangs, `fallbacks: [backup]`; one plain and one streamed
     request (openai SDK, max_retries=0), sent together; seconds to the answer
  2  outage: every deployment answers 500; the requests that open the breakers, then
     200 requests at concurrency 20 while they are open (aiohttp)
  3  recovery: steady 20 req/s on route `auto` (cheap tier, then strong); the cheap
     tier answers 500 for 10 s, then heals; share answered during the outage and
     seconds from the heal until traffic is back on the cheap tier
  4  flaky tier: 1,000 requests at 20 req/s, the cheap tier failing 30% (500)

    .venv/bin/python bench/faults.py [--only 1,3] [--rate 20] [--flaky-requests 1000]
                                     [--seed 4] [--breaker-cooldown S] [--write FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from gateway_overhead import loop_factory, run_async, source_revision

HERE = Path(__file__).resolve().parent
PROMPT = "What are your opening hours?"
CHEAP_MODEL, STRONG_MODEL = "cheap-model", "strong-model"
CHEAP_PRICE = {"input": "0.15", "output": "0.60"}
STRONG_PRICE = {"input": "2.50", "output": "10.00"}
HUNG_LIMIT_S = 35.0
WARM_S, OUTAGE_S, QUIET_S, RECOVERY_CAP_S = 5.0, 10.0, 5.0, 150.0
OUTAGE_REQUESTS, OUTAGE_CONCURRENCY = 200, 20
BREAKER = re.compile(r'^tierwise_breaker_state\{deployment="([^"]+)"\} ([0-9.e+-]+)$', re.M)
BREAKER_NAMES = {0.0: "closed", 1.0: "half-open", 2.0: "open"}


class Report:
    """Lines printed as they come, kept for --write."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, *lines: str) -> None:
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# --- configs ---------------------------------------------------------------------------


def hung_config(base: str) -> dict[str, Any]:
    v1 = base + "/v1"
    return {
        "deployments": {
            "primary": {"model": "primary-model", "api_base": v1, "fallbacks": ["backup"]},
            "backup": {"model": "backup-model", "api_base": v1},
        }
    }


def tiered_config(base: str, breaker_cooldown_s: float | None = None) -> dict[str, Any]:
    """Route `auto`: the fixed router starts every request on the cheap tier; the
    strong tier is next. Prices only so that answers carry a cost."""
    v1 = base + "/v1"
    config: dict[str, Any] = {
        "deployments": {
            "mini": {"model": CHEAP_MODEL, "api_base": v1, "price": CHEAP_PRICE},
            "big": {"model": STRONG_MODEL, "api_base": v1, "price": STRONG_PRICE},
        },
        "tiers": {"cheap": ["mini"], "strong": ["big"]},
        "routes": {"auto": {"router": "fixed"}},
    }
    if breaker_cooldown_s is not None:
        config["fallback"] = {"breaker": {"cooldown_s": breaker_cooldown_s}}
    return config


def defaults_note() -> str:
    from tierwise.config import FallbackConfig

    d = FallbackConfig()
    return (
        f"fallback.attempt_timeout_s {d.attempt_timeout_s:g}, deadline_s {d.deadline_s:g}, "
        f"max_attempts {d.max_attempts}, retries_per_deployment {d.retries_per_deployment}, "
        f"backoff.base_s {d.backoff.base_s:g}, breaker.failure_threshold "
        f"{d.breaker.failure_threshold}, breaker.cooldown_s {d.breaker.cooldown_s:g}"
    )


@asynccontextmanager
async def gateway(config: dict[str, Any]) -> AsyncIterator[str]:
    """The gateway server on a loopback port, ready; yields its base URL."""
    import aiohttp

    from tierwise import parse_config
    from tierwise.server.run import running

    async with running(parse_config(config)) as server, aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(server.base_url + "/ready") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.05)
        yield server.base_url


# --- requests --------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    sent_s: float
    latency_s: float
    status: int
    """0: no HTTP answer (connection error or client timeout)."""
    deployment: str = ""
    tier: str = ""
    calls: int = 0
    cost_usd: Decimal | None = None
    retry_after: str | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


class Client:
    """aiohttp POSTs of one chat request to the gateway, timed from `zero`."""

    def __init__(self, base: str, zero: float) -> None:
        import aiohttp

        self.url = base + "/v1/chat/completions"
        self.zero = zero
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=200),
        )
        self.sent: list[float] = []
        self.done: list[Reply] = []

    async def ask(self, model: str = "auto") -> Reply:
        import aiohttp

        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
        sent = time.monotonic()
        self.sent.append(sent - self.zero)
        try:
            async with self.session.post(self.url, json=body) as response:
                await response.read()
                headers = response.headers
                cost = headers.get("x-tierwise-cost-usd")
                reply = Reply(
                    sent - self.zero,
                    time.monotonic() - sent,
                    response.status,
                    headers.get("x-tierwise-model", ""),
                    headers.get("x-tierwise-tier", ""),
                    int(headers.get("x-tierwise-attempts", "0")),
                    Decimal(cost) if cost else None,
                    headers.get("retry-after"),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            reply = Reply(sent - self.zero, time.monotonic() - sent, 0, error=type(exc).__name__)
        self.done.append(reply)
        return reply

    async def close(self) -> None:
        await self.session.close()


class BreakerWatch:
    """Scrapes the gateway's /metrics every `every_s` and keeps each change of one
    deployment's breaker state, as (seconds since `zero`, state)."""

    def __init__(self, base: str, deployment: str, zero: float, every_s: float = 0.2) -> None:
        self.url, self.deployment, self.zero, self.every_s = (
            base + "/metrics",
            deployment,
            zero,
            every_s,
        )
        self.changes: list[tuple[float, str]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(self.url) as response:
                    text = await response.text()
                states = {name: float(value) for name, value in BREAKER.findall(text)}
                state = BREAKER_NAMES.get(states.get(self.deployment, -1.0), "unknown")
                if not self.changes or self.changes[-1][1] != state:
                    self.changes.append((time.monotonic() - self.zero, state))
                await asyncio.sleep(self.every_s)

    def describe(self, origin: float) -> str:
        changes = ", ".join(f"{state} at {t - origin:+.1f} s" for t, state in self.changes)
        return f"{changes} (scraped every {self.every_s:g} s: shorter states can be missed)"


def skipped_cheap(reply: Reply) -> bool:
    """Answered by the strong tier with one call: the cheap tier was not called
    (its breaker open, or half-open with the one probe already out)."""
    return reply.ok and reply.tier == "strong" and reply.calls == 1


def skip_stretches(replies: Sequence[Reply], origin: float) -> str:
    """Runs of consecutive requests, in send order, that did not call `mini`."""
    runs: list[list[Reply]] = [[]]
    for reply in sorted(replies, key=lambda r: r.sent_s):
        if skipped_cheap(reply):
            runs[-1].append(reply)
        elif runs[-1]:
            runs.append([])
    found = [run for run in runs if run]
    return (
        "; ".join(
            f"sent {run[0].sent_s - origin:+.1f} s to {run[-1].sent_s - origin:+.1f} s "
            f"({len(run)} requests)"
            for run in found
        )
        or "none"
    )


async def paced(
    client: Client,
    rate: float,
    stop: Callable[[float, int], bool],
    tick: Callable[[float], None] = lambda now: None,
) -> list[Reply]:
    """One request every 1/rate s on a fixed schedule (open loop: a slow answer
    does not delay the next send) until `stop(now, sent)`; `tick(now)` runs before
    each send. Returns every reply, in send order."""
    tasks: list[asyncio.Task[Reply]] = []
    while True:
        delay = client.zero + len(tasks) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic() - client.zero
        if stop(now, len(tasks)):
            break
        tick(now)
        tasks.append(asyncio.create_task(client.ask()))
    return list(await asyncio.gather(*tasks))


# --- figures ---------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def latency_note(replies: Sequence[Reply]) -> str:
    ms = [r.latency_s * 1000 for r in replies]
    return (
        f"p50 {percentile(ms, 0.5):,.1f} ms, p99 {percentile(ms, 0.99):,.1f} ms, "
        f"max {max(ms):,.1f} ms"
    )


def statuses(replies: Sequence[Reply]) -> str:
    counts = Counter("no answer" if r.status == 0 else str(r.status) for r in replies)
    return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))


def served(replies: Sequence[Reply]) -> Counter[str]:
    return Counter(r.tier if r.ok else "not answered" for r in replies)


def share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


def served_note(replies: Sequence[Reply]) -> str:
    counts = served(replies)
    return ", ".join(f"{tier} {n} ({share(n, len(replies))})" for tier, n in sorted(counts.items()))


# --- 1. hung primary -------------------------------------------------------------------


@dataclass(slots=True)
class Timed:
    kind: str
    seconds: float
    first_token_s: float | None
    deployment: str
    model: str
    text: str


async def ask_sdk(client: Any, *, stream: bool) -> Timed:
    messages: Any = [{"role": "user", "content": PROMPT}]
    started = time.monotonic()
    raw = await client.chat.completions.with_raw_response.create(
        model="primary", messages=messages, stream=stream
    )
    deployment = raw.headers.get("x-tierwise-model", "")
    if not stream:
        reply = raw.parse()
        content = reply.choices[0].message.content or ""
        return Timed(
            "non-streamed", time.monotonic() - started, None, deployment, reply.model, content
        )
    first: float | None = None
    model, text = "", ""
    async for chunk in raw.parse():
        model = chunk.model or model
        piece = "".join(c.delta.content or "" for c in chunk.choices)
        if piece and first is None:
            first = time.monotonic() - started
        text += piece
    return Timed("streamed", time.monotonic() - started, first, deployment, model, text)


async def hung_primary(report: Report) -> None:
    from openai import AsyncOpenAI

    from tierwise.testing import FakeUpstream

    progress("1: hung primary (about 30 s)")
    async with FakeUpstream(seed=1, hang_s=3600) as upstream:
        upstream.set_failure_rate("primary-model", 1.0, fault="hang")
        async with (
            gateway(hung_config(upstream.base_url)) as base,
            AsyncOpenAI(base_url=base + "/v1", api_key="-", max_retries=0, timeout=200) as sdk,
        ):
            timed = await asyncio.gather(ask_sdk(sdk, stream=False), ask_sdk(sdk, stream=True))
        calls = {m: upstream.count(m) for m in ("primary-model", "backup-model")}
    report(
        "",
        "**1. Hung primary.** Deployment `primary` (fault `hang`: accepts the request, never "
        "answers) with `fallbacks: [backup]`, `backup` healthy. One non-streamed and one "
        "streamed request to model `primary`, sent at the same time (openai SDK, "
        "max_retries=0, client timeout 200 s).",
        "",
        "| request | seconds to answer | first content | answered by (deployment / model) |",
        "|---|---:|---:|---|",
    )
    for t in timed:
        first = f"{t.first_token_s:.2f} s" if t.first_token_s is not None else "-"
        report(f"| {t.kind} | {t.seconds:.2f} | {first} | {t.deployment} / {t.model} |")
    report(
        "",
        f"- upstream calls: primary-model {calls['primary-model']}, "
        f"backup-model {calls['backup-model']}",
    )
    for t in timed:
        if t.seconds > HUNG_LIMIT_S or t.deployment != "backup" or not t.text:
            report(
                f"- NOTE: the {t.kind} request took {t.seconds:.1f} s, answered by "
                f"{t.deployment or 'nobody'} with {len(t.text)} characters"
            )


# --- 2. every deployment failing -------------------------------------------------------


async def open_breakers(client: Client, limit: int = 12) -> list[Reply]:
    """Sequential requests until one is refused with 503 (or `limit` requests)."""
    replies: list[Reply] = []
    while len(replies) < limit and (not replies or replies[-1].status != 503):
        replies.append(await client.ask())
    return replies


async def concurrent(client: Client, count: int, concurrency: int) -> list[Reply]:
    left = [count]
    replies: list[Reply] = []

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            replies.append(await client.ask())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return replies


async def outage(report: Report) -> None:
    from tierwise.testing import FakeUpstream

    progress("2: every deployment failing")
    async with FakeUpstream(seed=2) as upstream, gateway(tiered_config(upstream.base_url)) as base:
        upstream.set_failure_rate(None, 1.0, fault="500")
        client = Client(base, time.monotonic())
        try:
            opening = await open_breakers(client)
            opened_at, before = time.monotonic(), upstream.count()
            replies = await concurrent(client, OUTAGE_REQUESTS, OUTAGE_CONCURRENCY)
            phase_s, calls = time.monotonic() - opened_at, upstream.count() - before
        finally:
            await client.close()
    opening_calls = before
    waits = sorted({int(r.retry_after) for r in replies if r.retry_after is not None})
    refused = sum(1 for r in replies if r.status == 503)
    report(
        "",
        "**2. Every deployment failing.** Route `auto` (cheap tier `mini`, then strong tier "
        "`big`); the fake answers every call with 500. First, sequential requests until "
        f"one is refused with 503 (the breakers are open); then {OUTAGE_REQUESTS} requests at "
        f"concurrency {OUTAGE_CONCURRENCY} (aiohttp).",
        "",
        f"- opening the breakers: {len(opening)} requests, statuses "
        f"{', '.join(str(r.status) for r in opening)}; {opening_calls} upstream calls; "
        f"latency of each: {', '.join(f'{r.latency_s * 1000:.0f}' for r in opening)} ms",
        f"- then {len(replies)} requests at concurrency {OUTAGE_CONCURRENCY}, in {phase_s:.2f} s: "
        f"statuses {statuses(replies)}",
        f"- latency: {latency_note(replies)}",
        f"- Retry-After on the 503s: {', '.join(map(str, waits)) or 'none'} s "
        f"({sum(1 for r in replies if r.retry_after is not None)} of {refused} carried one)",
        f"- upstream calls during those {len(replies)} requests: {calls}",
    )
    if any(r.status != 503 for r in replies) or len(waits) == 0:
        report("- NOTE: not every request was refused with a 503 and a Retry-After")


# --- 3. recovery after an outage of the cheap tier -------------------------------------


@dataclass(slots=True)
class Outage:
    """Scenario 3's timeline, in seconds since the first send."""

    start_s: float | None = None
    end_s: float | None = None
    cheap_calls: dict[str, int] = field(default_factory=dict)


def off_cheap(reply: Reply) -> bool:
    return not (reply.ok and reply.tier == "cheap")


def recovered(client: Client, outage: Outage, now: float) -> bool:
    """Whether every request sent in the last QUIET_S s after the heal (but the
    last second's, which may be in flight) was answered by the cheap tier."""
    if outage.end_s is None or now - outage.end_s < QUIET_S:
        return False
    if now - outage.end_s > RECOVERY_CAP_S:
        return True
    since, until = max(now - QUIET_S, outage.end_s), now - 1.0
    sent = sum(1 for t in client.sent if since <= t <= until)
    done = [r for r in client.done if since <= r.sent_s <= until]
    return sent > 0 and len(done) == sent and not any(off_cheap(r) for r in done)


async def run_recovery(
    base: str, upstream: Any, rate: float
) -> tuple[list[Reply], Outage, BreakerWatch]:
    zero = time.monotonic()
    client, outage = Client(base, zero), Outage()
    watch = BreakerWatch(base, "mini", zero)
    watch.start()

    def tick(now: float) -> None:
        if outage.start_s is None and now >= WARM_S:
            outage.cheap_calls["start"] = upstream.count(CHEAP_MODEL)
            upstream.set_failure_rate(CHEAP_MODEL, 1.0, fault="500")
            outage.start_s = now
        elif outage.start_s is not None and outage.end_s is None and now >= WARM_S + OUTAGE_S:
            outage.cheap_calls["end"] = upstream.count(CHEAP_MODEL)
            upstream.set_failure_rate(CHEAP_MODEL, 0.0)
            outage.end_s = now

    try:
        replies = await paced(client, rate, lambda now, _: recovered(client, outage, now), tick)
    finally:
        await watch.stop()
        await client.close()
    return replies, outage, watch


def back_on_cheap(after: list[Reply], heal_s: float) -> tuple[float | None, float | None]:
    """Seconds from the heal to the first request answered by the cheap tier, and
    to the first request of the final stretch that all was (None: never)."""
    first = next((r.sent_s for r in after if not off_cheap(r)), None)
    if not after or off_cheap(after[-1]):
        return (None if first is None else first - heal_s), None
    last_off = max((r.sent_s for r in after if off_cheap(r)), default=heal_s - 1.0)
    stayed = min(r.sent_s for r in after if r.sent_s > last_off)
    return (None if first is None else first - heal_s), stayed - heal_s


def fmt_s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def recovery_title(rate: float, cooldown_s: float | None) -> str:
    title = (
        f"**3. Recovery after a {OUTAGE_S:g} s outage of the cheap tier.**"
        if cooldown_s is None
        else f"**3b. The same with `fallback.breaker.cooldown_s: {cooldown_s:g}` (NOT the "
        "default; set only to show that recovery follows the breaker's cooldown).**"
    )
    return (
        f"{title} Route `auto` (fixed router: every request starts on the cheap tier `mini`, "
        f"then the strong tier `big`), {rate:g} requests/s on a fixed schedule (aiohttp). "
        f"Healthy for {WARM_S:g} s, then the fake answers 500 to every `mini` call for "
        f"{OUTAGE_S:g} s, then heals; traffic runs on until {QUIET_S:g} s of requests in a row "
        f"are all answered by the cheap tier (at most {RECOVERY_CAP_S:g} s after the heal)."
    )


async def recovery(report: Report, rate: float, cooldown_s: float | None = None) -> None:
    from tierwise.testing import FakeUpstream

    label = "default breaker" if cooldown_s is None else f"breaker.cooldown_s {cooldown_s:g}"
    progress(f"3: recovery after a {OUTAGE_S:g} s outage of the cheap tier ({label})")
    async with (
        FakeUpstream(seed=3) as upstream,
        gateway(tiered_config(upstream.base_url, cooldown_s)) as base,
    ):
        replies, outage, watch = await run_recovery(base, upstream, rate)
    assert outage.start_s is not None and outage.end_s is not None
    start, end = outage.start_s, outage.end_s
    during = [r for r in replies if start <= r.sent_s < end]
    after = [r for r in replies if r.sent_s >= end]
    first, back = back_on_cheap(after, end)
    limbo = [r for r in after if back is None or r.sent_s < end + back]
    reached = outage.cheap_calls["end"] - outage.cheap_calls["start"]
    report(
        "",
        recovery_title(rate, cooldown_s),
        "",
        f"- before the outage: {sum(1 for r in replies if r.sent_s < start)} requests, "
        f"answered by {served_note([r for r in replies if r.sent_s < start])}",
        f"- during the outage: {len(during)} requests, answered by {served_note(during)}; "
        f"statuses {statuses(during)}; latency {latency_note(during)}; {reached} calls "
        "reached `mini`",
        f"- after the heal: the first request answered by the cheap tier was sent "
        f"{fmt_s(first)} after it; every request from the one sent {fmt_s(back)} after it on "
        "was answered by the cheap tier",
        f"- from the heal to that point: {len(limbo)} requests, answered by "
        f"{served_note(limbo) or 'none'}",
        f"- requests that did not call `mini` at all (its breaker open): "
        f"{skip_stretches(replies, start)}",
        f"- breaker of `mini` in /metrics: {watch.describe(start)}",
        f"- (times are from the start of the outage, which ended at +{end - start:.1f} s)",
        f"- all {len(replies)} requests: statuses {statuses(replies)}",
    )
    if any(not r.ok for r in replies):
        report("- NOTE: some requests were not answered (see the statuses above)")
    if back is None:
        report(
            f"- NOTE: traffic was not back on the cheap tier {RECOVERY_CAP_S:g} s after the heal"
        )


# --- 4. a flaky cheap tier -------------------------------------------------------------


async def flaky_run(
    base: str, upstream: Any, rate: float, count: int
) -> tuple[list[Reply], dict[str, Decimal | None], dict[str, int], BreakerWatch]:
    zero = time.monotonic()
    client = Client(base, zero)
    try:
        one = {tier: (await client.ask(tier)).cost_usd for tier in ("cheap", "strong")}
        upstream.set_failure_rate(CHEAP_MODEL, 0.3, fault="500")
        before = {m: upstream.count(m) for m in (CHEAP_MODEL, STRONG_MODEL)}
        client.zero = time.monotonic()
        watch = BreakerWatch(base, "mini", client.zero)
        watch.start()
        try:
            replies = await paced(client, rate, lambda _, sent: sent >= count)
        finally:
            await watch.stop()
    finally:
        await client.close()
    calls = {m: upstream.count(m) - before[m] for m in (CHEAP_MODEL, STRONG_MODEL)}
    return replies, one, calls, watch


def cost_lines(replies: list[Reply], one: dict[str, Decimal | None]) -> list[str]:
    costs = [r.cost_usd for r in replies if r.ok and r.cost_usd is not None]
    strong, cheap = one["strong"], one["cheap"]
    if not costs or strong is None or cheap is None:
        return ["- cost: not available from the x-tierwise-cost-usd headers"]
    total, n = sum(costs, Decimal(0)), len(replies)
    baseline = strong * n
    return [
        f"- cost (sum of x-tierwise-cost-usd over {len(costs)} answers): ${total:.6f}; "
        f"all-strong baseline ({n} x one strong-tier answer, ${strong:f}): ${baseline:.6f}; "
        f"ratio {total / baseline:.1%} (all answered by the cheap tier: "
        f"${cheap * n:.6f}, {cheap / strong:.1%})"
    ]


async def flaky(report: Report, rate: float, count: int, seed: int) -> None:
    from tierwise.testing import FakeUpstream

    progress(f"4: {count} requests against a 30%-flaky cheap tier (about {count / rate:.0f} s)")
    async with (
        FakeUpstream(seed=seed) as upstream,
        gateway(tiered_config(upstream.base_url)) as base,
    ):
        replies, one, calls, watch = await flaky_run(base, upstream, rate, count)
    n, by = len(replies), served(replies)
    answered = n - by["not answered"]
    strong = [r for r in replies if r.ok and r.tier == "strong"]
    skipped = sum(1 for r in strong if skipped_cheap(r))
    total_calls = calls[CHEAP_MODEL] + calls[STRONG_MODEL]
    report(
        "",
        f"**4. A 30%-flaky cheap tier.** Route `auto` as in 3; the fake answers 500 to a "
        f"random 30% of `mini` calls (seed {seed}), `big` is healthy; {n:,} requests at {rate:g} "
        "requests/s on a fixed schedule (aiohttp).",
        "",
        f"- success: {answered} of {n} ({share(answered, n)}); statuses {statuses(replies)}",
        f"- upstream calls: {total_calls} ({total_calls / n:.3f} per request): `mini` "
        f"{calls[CHEAP_MODEL]}, `big` {calls[STRONG_MODEL]}",
        f"- answered by: cheap {by['cheap']} ({share(by['cheap'], n)}), strong {by['strong']} "
        f"({share(by['strong'], n)}); of the strong answers, {len(strong) - skipped} came after "
        f"`mini` failed and {skipped} skipped `mini` (its breaker open)",
        f"- requests that did not call `mini` at all (its breaker open), times from the first "
        f"request: {skip_stretches(replies, 0.0)}",
        f"- breaker of `mini` in /metrics: {watch.describe(0.0)}",
        f"- latency: {latency_note(replies)}",
        *cost_lines(replies, one),
    )
    if by["not answered"]:
        report("- NOTE: some requests were not answered (see the statuses above)")


# --- the run ---------------------------------------------------------------------------


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_note(when: str) -> str:
    one, five, _ = os.getloadavg()
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min)"


def header() -> list[str]:
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        f"Run {stamp}. No config sets a timeout, fallback or breaker option unless a scenario "
        f"says so; the defaults in force: {defaults_note()}.",
        "",
        f"- {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s) ({platform.processor() or platform.machine()}), shared with "
        f"other jobs; event loop: {loop_factory()[1]}; gateway server, fake upstream and "
        "client in one process",
        f"- aiohttp {version('aiohttp')}, openai {version('openai')}, "
        f"tierwise {version('tierwise')}",
        f"- {source_revision()}",
        f"- {load_note('at start')}",
    ]


async def run(args: argparse.Namespace, report: Report) -> None:
    chosen = {int(part) for part in args.only.split(",")}
    if 1 in chosen:
        await hung_primary(report)
    if 2 in chosen:
        await outage(report)
    if 3 in chosen:
        await recovery(report, args.rate)
        if args.breaker_cooldown is not None:
            await recovery(report, args.rate, args.breaker_cooldown)
    if 4 in chosen:
        await flaky(report, args.rate, args.flaky_requests, args.seed)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default="1,2,3,4", help="comma-separated scenarios")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s in 3 and 4")
    parser.add_argument("--flaky-requests", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=4, help="the fake's random seed in 4")
    parser.add_argument(
        "--breaker-cooldown",
        type=float,
        metavar="S",
        help="also run scenario 3 with fallback.breaker.cooldown_s S (not the default)",
    )
    parser.add_argument("--write", type=Path, help="also write the output to this file")
    args = parser.parse_args(argv)
    report = Report()
    report(*header())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tw-faults-") as scratch:
        # The request log stays on, as by default, but in a scratch file.
        os.environ["TIERWISE_STORE_URL"] = f"sqlite:///{scratch}/requests.db"
        run_async(run(args, report))
    report("", f"- {load_note('at end')}; the run took {time.monotonic() - started:.0f} s")
    if args.write:
        args.write.write_text(report.text())


if __name__ == "__main__":
    main()
