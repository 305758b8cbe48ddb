"""Shadow evaluation: `learn --shadow` trains a candidate on a route's logged traffic
and runs it beside the live router on every replica. A gateway whose monitor loads
the shadow answers exactly as one without it, with the same upstream calls, logs the
shadow's decision on each request, and `--shadow-report` counts agreement and
estimates the quality and cost difference; `--shadow-stop` removes it.

The fake upstream gives a too-short answer from the cheap model to arithmetic
prompts (the route's `min_length` check fails and the request escalates) and a good
one to greetings; the live router is `fixed` (cheap first), so a candidate trained
on the labelled log starts arithmetic on the strong tier and greetings on cheap."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import (
    LONG,
    chat_prompt,
    gateway_data,
    math_prompt,
    opened_with_prompts,
    write_config,
)
from tierwise import Gateway, parse_config
from tierwise.cli.main import app
from tierwise.drift.audit import read_calibrations
from tierwise.experiments.monitor import Monitor
from tierwise.learning.shadow_report import wilson
from tierwise.store import Feedback, RecordWriter, Store
from tierwise.testing import FakeUpstream
from tierwise.types import ChatRequest, Message

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))


def config_data(upstream: FakeUpstream, store_url: str, target: str = "cheap") -> dict[str, Any]:
    route = {
        "router": {"kind": "fixed", "target": target},
        "baseline": "big",
        "checks": [{"kind": "min_length"}],
    }
    return gateway_data(
        upstream.base_url,
        routes={"auto": route},
        store={"url": store_url, "capture_prompts": True},
    )


class Sender:
    """Requests through one gateway, logged in `store` when `writer` is given, each
    answer rated 1 by its user."""

    def __init__(
        self, upstream: FakeUpstream, gateway: Gateway, store: Store, log: bool = True
    ) -> None:
        self.upstream, self.gateway, self.store = upstream, gateway, store
        self.writer = RecordWriter(store) if log else None
        if self.writer is not None:
            gateway.sinks.append(self.writer.submit)

    async def send(self, prompt: str, cheap_ok: bool) -> tuple[str, bytes]:
        self.upstream.script("cheap-model", prompt, LONG if cheap_ok else "no")
        self.upstream.script("strong-model", prompt, LONG)
        request = ChatRequest([Message("user", prompt)], model="auto", max_tokens=20)
        result = await self.gateway.chat(request)
        if self.writer is not None:
            await self.writer.flush()
            feedback = Feedback(os.urandom(6).hex(), result.record.request_id, 0.0, 1.0, "1")
            assert await self.store.add_feedback(feedback) == result.record.request_id
        answer = repr(replace(result.response, id="", created=0)).encode()
        return result.record.request_id, answer

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        await self.gateway.aclose()


async def labelled_log(upstream: FakeUpstream, store: Store, data: dict[str, Any]) -> None:
    """Arithmetic and greetings, started cheap (by the route) and strong (as
    exploration would), every answer rated."""
    strong_data = config_data(upstream, data["store"]["url"], "strong")
    strong = Sender(upstream, Gateway(parse_config(strong_data)), store)
    cheap = Sender(upstream, Gateway(parse_config(data)), store)
    try:
        for i in range(20):
            await cheap.send(math_prompt(i), cheap_ok=False)
            await cheap.send(chat_prompt(i), cheap_ok=True)
            if i % 2 == 0:
                await strong.send(math_prompt(i), cheap_ok=False)
                await strong.send(chat_prompt(i), cheap_ok=True)
    finally:
        await cheap.close()
        await strong.close()


async def cli(*args: str) -> Any:
    return await asyncio.to_thread(runner.invoke, app, list(args))


MIX = [(math_prompt(100 + i), False) for i in range(6)] + [
    (chat_prompt(100 + i), True) for i in range(9)
]
"""The crafted traffic: 6 arithmetic prompts (live: cheap, shadow: strong) and 9
greetings (both cheap): 9 of 15 agree."""


async def test_a_shadow_router_decides_beside_the_live_one_without_touching_answers(
    upstream: FakeUpstream, store_url: str, tmp_path: Path
) -> None:
    data = config_data(upstream, store_url)
    config = write_config(tmp_path, data)
    store = await opened_with_prompts(store_url)
    plain = Sender(upstream, Gateway(parse_config(data)), store, log=False)
    shadowed = Sender(upstream, Gateway(parse_config(data)), store)
    reloaded = Sender(upstream, Gateway(parse_config(data)), store)
    monitor = Monitor(shadowed.gateway, store)
    try:
        await labelled_log(upstream, store, data)
        base = ("learn", "--route", "auto", "-c", str(config))
        started = await cli(*base, "--shadow", "--min-labelled", "30")
        assert started.exit_code == 0, started.output
        assert "route auto: shadowing" in started.output
        [entry] = [e for e in await read_calibrations(store, "auto") if e["parameter"] == "shadow"]
        router_id = entry["evidence"]["router_id"]
        assert not entry["applied"] and entry["actor"] == "cli" and router_id
        assert (await monitor.tick())["shadowed"] == ["auto"]
        live = shadowed.gateway.targets.get("auto").router
        assert live is not None and live.name == "fixed"

        plain_calls, plain_answers = upstream.count(), []
        for prompt, ok in MIX:
            plain_answers.append((await plain.send(prompt, ok))[1])
        plain_calls = upstream.count() - plain_calls
        shadow_calls, shadow_answers, ids = upstream.count(), [], []
        for prompt, ok in MIX:
            rid, answer = await shadowed.send(prompt, ok)
            ids.append(rid)
            shadow_answers.append(answer)
        await monitor.shadows.flush()
        assert upstream.count() - shadow_calls == plain_calls == 6 * 2 + 9
        assert shadow_answers == plain_answers

        pairs = await store.shadow_pairs("auto", router_id, 0.0)
        targets = {p["request_id"]: p["shadow_target"] for p in pairs}
        assert [targets.get(rid) for rid in ids] == ["strong"] * 6 + ["cheap"] * 9
        assert all(p["live_target"] == "cheap" for p in pairs)

        report = await cli(*base, "--shadow-report", "--since", "1d", "--json")
        assert report.exit_code == 0, report.output
        await check_report(yaml.safe_load(report.output))
        text = await cli(*base, "--shadow-report", "--since", "1d")
        assert "agreement with the live router: 60.0%" in text.output, text.output
        assert "on 15 requests (9 agreed)" in text.output

        monitor.gateway = reloaded.gateway  # as a config reload does
        await monitor.tick()
        rid, _ = await reloaded.send(math_prompt(150), False)
        await monitor.shadows.flush()
        pairs = await store.shadow_pairs("auto", router_id, 0.0)
        assert len(pairs) == 16 and pairs[-1]["request_id"] == rid
        assert pairs[-1]["shadow_target"] == "strong"

        stopped = await cli("learn", "--shadow-stop", "auto", "-c", str(config))
        assert stopped.exit_code == 0 and "route auto: stopped" in stopped.output
        newest = (await read_calibrations(store, "auto"))[0]
        assert newest["parameter"] == "shadow" and newest["evidence"]["router_id"] is None
        assert (await monitor.tick())["shadowed"] == ["auto"]
        assert monitor.shadows.routers == {}
        await reloaded.send(math_prompt(200), False)
        await monitor.shadows.flush()
        assert len(await store.shadow_pairs("auto", router_id, 0.0)) == 16
    finally:
        await monitor.shadows.aclose()
        await plain.close()
        await shadowed.close()
        await reloaded.close()
        await store.close()


async def check_report(report: dict[str, Any]) -> None:
    agreement = report["agreement"]
    assert (agreement["requests"], agreement["agree"]) == (15, 9)
    assert agreement["interval"] == pytest.approx([0.3575, 0.8018], abs=1e-3)
    assert report["labelled"] == 15
    c = report["comparison"]
    # every arithmetic answer from cheap failed its check (0), strong's was rated 1
    assert c["candidate"]["quality"] == pytest.approx(1.0)
    assert c["current"]["quality"] == pytest.approx(9 / 15)
    assert c["candidate"]["cost_usd"] > c["current"]["cost_usd"]
    assert c["intervals"]["quality_diff"][0] > 0


def test_wilson_interval_matches_the_formula_at_the_edges() -> None:
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 0)[0] != wilson(0, 0)[0]
    low, high = wilson(9, 15)
    assert low == pytest.approx(0.3575, abs=1e-3) and high == pytest.approx(0.8018, abs=1e-3)


async def test_shadow_stop_without_a_shadow_changes_nothing(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    config = tmp_path / "tierwise.yaml"
    config.write_text(yaml.safe_dump(config_data(upstream, url)))
    store = await opened_with_prompts(url)
    try:
        result = await cli("learn", "--shadow-stop", "auto", "-c", str(config))
        assert result.exit_code == 0 and "route auto: unchanged" in result.output
        report = await cli("learn", "--route", "auto", "--shadow-report", "-c", str(config))
        assert report.exit_code == 0 and "no_shadow" in report.output, report.output
        assert await read_calibrations(store) == []
    finally:
        await store.close()


async def test_a_stopping_server_stops_its_shadow_worker(
    upstream: FakeUpstream, store_url: str, tmp_path: Path
) -> None:
    from tierwise.server.admin import MONITOR
    from tierwise.server.run import running

    data = config_data(upstream, store_url)
    config = write_config(tmp_path, data)
    store = await opened_with_prompts(store_url)
    try:
        await labelled_log(upstream, store, data)
        base = ("learn", "--route", "auto", "-c", str(config))
        started = await cli(*base, "--shadow", "--min-labelled", "30")
        assert started.exit_code == 0, started.output
    finally:
        await store.close()
    async with running(parse_config(data)) as live:
        monitor = live.app[MONITOR]
        await monitor.tick()
        assert list(monitor.shadows.routers) == ["auto"]
        upstream.script("cheap-model", math_prompt(300), LONG)
        async with aiohttp.ClientSession() as session:
            body = {"model": "auto", "messages": [{"role": "user", "content": math_prompt(300)}]}
            async with session.post(live.base_url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200
        await monitor.shadows.flush()
        worker = monitor.shadows._worker
        assert worker is not None and not worker.done()
    assert worker.done()
