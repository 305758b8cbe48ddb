"""Learning from the gateway's own traffic: a real gateway answers through the fake
upstream (the cheap model gives a too-short answer to arithmetic prompts, which fails
the route's `min_length` check and escalates, and a good one to greetings), users'
feedback labels the answers, `export-outcomes` writes them as an outcome table, and
`learn` trains, compares, proposes, applies (on another replica) and rolls back."""

from __future__ import annotations

import asyncio
import csv
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
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
from tierwise.experiments.log import read_events
from tierwise.experiments.monitor import Monitor
from tierwise.learning.loop import Settings, compare
from tierwise.learning.outcomes import OutcomeTable, read_outcomes
from tierwise.store import Feedback, RecordWriter, Store
from tierwise.testing import FakeUpstream
from tierwise.types import ChatRequest, Message

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))


def config_data(upstream: FakeUpstream, store_url: str) -> dict[str, Any]:
    route = {"router": {"kind": "fixed"}, "baseline": "big", "checks": [{"kind": "min_length"}]}
    return gateway_data(
        upstream.base_url,
        routes={"auto": route},
        store={"url": store_url, "capture_prompts": True},
    )


class Traffic:
    """Requests through a gateway, logged in `store`, with feedback on each answer."""

    def __init__(self, upstream: FakeUpstream, store: Store, data: dict[str, Any]) -> None:
        self.upstream, self.store = upstream, store
        self.gateway = Gateway(parse_config(data))
        strong_first = {**data["routes"]["auto"], "router": {"kind": "fixed", "target": "strong"}}
        self.explorer = Gateway(parse_config({**data, "routes": {"auto": strong_first}}))
        self.writer = RecordWriter(store)
        for gateway in (self.gateway, self.explorer):
            gateway.sinks.append(self.writer.submit)

    async def send(
        self, prompt: str, *, cheap_ok: bool, rate: bool = True, explore: bool = False
    ) -> str:
        self.upstream.script("cheap-model", prompt, LONG if cheap_ok else "no")
        self.upstream.script("strong-model", prompt, LONG)
        request = ChatRequest([Message("user", prompt)], model="auto", max_tokens=20)
        gateway = self.explorer if explore else self.gateway
        record = (await gateway.chat(request)).record
        if rate:
            await self.writer.flush()
            feedback = Feedback(os.urandom(6).hex(), record.request_id, 0.0, 1.0, "1")
            assert await self.store.add_feedback(feedback) == record.request_id
        return record.request_id

    async def mixed(self, n: int) -> None:
        for i in range(n):
            await self.send(math_prompt(i), cheap_ok=False)
            await self.send(chat_prompt(i), cheap_ok=True)
        await self.writer.flush()

    async def explored(self, n: int) -> None:
        """Some of the same prompts started on the strong tier (as exploration would)."""
        for i in range(0, n, 2):
            await self.send(math_prompt(i), cheap_ok=False, explore=True)
            await self.send(chat_prompt(i), cheap_ok=True, explore=True)

    async def close(self) -> None:
        await self.writer.close()
        await self.gateway.aclose()
        await self.explorer.aclose()


async def cli(*args: str) -> Any:
    result = await asyncio.to_thread(runner.invoke, app, list(args))
    return result


async def test_export_outcomes_joins_checks_escalations_and_feedback(
    upstream: FakeUpstream, store_url: str, tmp_path: Path
) -> None:
    data = config_data(upstream, store_url)
    store = await opened_with_prompts(store_url)
    traffic = Traffic(upstream, store, data)
    try:
        await traffic.mixed(6)
        await traffic.send(chat_prompt(99), cheap_ok=True, rate=False)
        await traffic.writer.flush()
    finally:
        await traffic.close()
        await store.close()
    out = tmp_path / "outcomes.csv"
    config = write_config(tmp_path, data)
    result = await cli("export-outcomes", "--since", "1d", "--out", str(out), "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "12 labelled requests" in result.output and "1 requests without" in result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:7] == [
        "prompt_id",
        "prompt",
        "source_benchmark",
        "score__cheap-model",
        "score__strong-model",
        "cost_usd__cheap-model",
        "cost_usd__strong-model",
    ]
    assert list(rows[0])[7:] in ([], ["propensity"])
    assert all(0 < float(r.get("propensity") or 1) <= 1 for r in rows)
    by_prompt = {r["prompt"]: r for r in rows}
    arithmetic, greeting = by_prompt[math_prompt(2)], by_prompt[chat_prompt(2)]
    assert (arithmetic["score__cheap-model"], arithmetic["score__strong-model"]) == ("0", "1")
    assert float(arithmetic["cost_usd__cheap-model"]) > 0
    assert float(arithmetic["cost_usd__strong-model"]) > float(arithmetic["cost_usd__cheap-model"])
    assert (greeting["score__cheap-model"], greeting["score__strong-model"]) == ("1", "")
    assert greeting["cost_usd__strong-model"] == "" and greeting["source_benchmark"] == "auto"
    assert chat_prompt(99) not in by_prompt
    table = read_outcomes(out)
    assert table.models == ["cheap-model", "strong-model"] and len(table) == 12
    trained = await cli(
        "train", str(out), "--out", str(tmp_path / "r.npz"), "--folds", "0", "--inner-folds", "3"
    )
    assert trained.exit_code == 0, trained.output
    evaluated = await cli(
        "eval", str(out), "--out", str(tmp_path / "eval"), "--router", str(tmp_path / "r.npz")
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert (tmp_path / "eval" / "metrics.json").exists()


async def test_learn_with_too_little_data_says_so_and_changes_nothing(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'few.db'}"
    data = config_data(upstream, url)
    store = await opened_with_prompts(url)
    traffic = Traffic(upstream, store, data)
    try:
        await traffic.mixed(3)
        config = write_config(tmp_path, data)
        result = await cli("learn", "--route", "auto", "--min-labelled", "50", "-c", str(config))
        assert result.exit_code == 0, result.output
        assert "6 labelled requests; learning needs at least 50" in result.output
        assert "nothing changed" in result.output
        assert await read_calibrations(store) == []
    finally:
        await traffic.close()
        await store.close()


async def test_learn_proposes_applies_on_every_replica_and_rolls_back(
    upstream: FakeUpstream, store_url: str, tmp_path: Path
) -> None:
    data = config_data(upstream, store_url)
    config = write_config(tmp_path, data)
    store = await opened_with_prompts(store_url)
    traffic = Traffic(upstream, store, data)
    replica = Gateway(parse_config(data))
    monitor = Monitor(replica, store)
    try:
        await traffic.mixed(20)
        await traffic.explored(20)
        base = ("learn", "--route", "auto", "--min-labelled", "30", "-c", str(config))
        proposed = await cli(*base)
        assert proposed.exit_code == 0, proposed.output
        assert "route auto: proposed" in proposed.output and "| candidate |" in proposed.output
        [entry] = await read_calibrations(store, "auto")
        assert entry["parameter"] == "router" and not entry["applied"]
        evidence = entry["evidence"]
        assert evidence["old"] == "the configured router (fixed)"
        assert evidence["new"] == f"learned router {evidence['router_id']}"
        comparison = evidence["comparison"]
        assert comparison["candidate"]["quality"] > comparison["current"]["quality"]
        assert comparison["intervals"]["quality_diff"][0] > 0
        await monitor.tick()
        assert router_name(replica, "auto") == "fixed"

        applied = await cli(*base, "--apply")
        assert applied.exit_code == 0 and "route auto: applied" in applied.output
        assert (await monitor.tick())["swapped"] == ["auto"]
        assert router_name(replica, "auto").startswith("learned-")
        assert await start_tier(replica, math_prompt(50)) == "strong"
        assert await start_tier(replica, chat_prompt(50)) == "cheap"

        rolled = await cli("learn", "--rollback", "auto", "-c", str(config))
        assert rolled.exit_code == 0 and "route auto: rolled_back" in rolled.output
        await monitor.tick()
        assert router_name(replica, "auto") == "fixed"
        assert await start_tier(replica, math_prompt(50)) == "cheap"
        newest = (await read_calibrations(store, "auto"))[0]
        assert newest["applied"] and newest["evidence"]["router_id"] is None
    finally:
        await traffic.close()
        await replica.aclose()
        await store.close()


def router_name(gateway: Gateway, target: str) -> str:
    router = gateway.targets.get(target).router
    return "" if router is None else router.name


async def start_tier(gateway: Gateway, prompt: str) -> str | None:
    request = ChatRequest([Message("user", prompt)], model="auto", max_tokens=20)
    _, decision = await gateway.decide(request)
    return None if decision is None else decision.target


async def test_learn_experiment_starts_an_ab_test_that_every_replica_can_serve(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ab.db'}"
    data = config_data(upstream, url)
    config = write_config(tmp_path, data)
    store = await opened_with_prompts(url)
    traffic = Traffic(upstream, store, data)
    replica = Gateway(parse_config(data))
    try:
        await traffic.mixed(20)
        await traffic.explored(20)
        result = await cli(
            "learn", "--route", "auto", "--min-labelled", "30", "--experiment", "-c", str(config)
        )
        assert result.exit_code == 0 and "route auto: experiment" in result.output
        [event] = await read_events(store)
        assert event.action == "create" and event.definition is not None
        assert {g.metric for g in event.definition.guardrails} == {"error_rate", "satisfaction"}
        target = event.definition.variants["learned"].target
        assert target is not None
        await Monitor(replica, store).tick()
        assert router_name(replica, target).startswith("learned-")
        assert replica.experiments.get(event.experiment).status == "running"
        [entry] = await read_calibrations(store, "auto")
        assert not entry["applied"] and entry["evidence"]["mode"] == "experiment"
    finally:
        await traffic.close()
        await replica.aclose()
        await store.close()


def test_a_worse_candidate_does_not_win() -> None:
    scores = np.array([[0.0, 1.0], [1.0, np.nan]] * 20)
    costs = np.array([[1.0, 10.0]] * 40)
    texts = [f"prompt {i}" for i in range(40)]
    table = OutcomeTable(texts, texts, ["auto"] * 40, ["cheap", "strong"], scores, costs, "")
    rows = np.arange(40, dtype=np.intp)
    right = np.array([1, 0] * 20, dtype=np.intp)
    wrong = np.array([0, 1] * 20, dtype=np.intp)
    settings = Settings(("cheap", "strong"), samples=200)
    worse = compare(table, rows, rows, wrong, right, settings)
    assert not worse["candidate_wins"] and worse["intervals"]["quality_diff"][1] < 0
    better = compare(table, rows, rows, right, wrong, settings)
    assert better["candidate_wins"]


def test_a_gain_the_log_cannot_tell_from_chance_does_not_win() -> None:
    """The candidate differs from the route's router on one of 40 requests, where it
    picks the cheap model and both answer well: cheaper by its point estimate, but a
    resample without that request shows no difference, so the cost interval reaches
    zero. Not applied; the same change on every other request is."""
    scores = np.ones((40, 2))
    costs = np.array([[1.0, 10.0]] * 40)
    texts = [f"prompt {i}" for i in range(40)]
    table = OutcomeTable(texts, texts, ["auto"] * 40, ["cheap", "strong"], scores, costs, "")
    rows = np.arange(40, dtype=np.intp)
    current = np.ones(40, dtype=np.intp)
    one = current.copy()
    one[7] = 0
    settings = Settings(("cheap", "strong"), samples=400)
    lucky = compare(table, rows, rows, one, current, settings)
    assert lucky["candidate"]["cost_usd"] < lucky["current"]["cost_usd"]
    assert lucky["intervals"]["cost_diff"][1] == 0 and not lucky["candidate_wins"]
    many = current.copy()
    many[::2] = 0
    assert compare(table, rows, rows, many, current, settings)["candidate_wins"]


def test_a_candidate_judged_on_few_requests_does_not_win() -> None:
    """The log labels the model each request was served by (cheap, scoring 0.5 on
    average); the candidate picks the strong model, whose outcome the log knows on 4
    of 40 requests only, all perfect. Better on what it is judged on, but judged on
    10% of the held-out requests: not applied."""
    scores = np.array([[1.0, np.nan], [0.0, np.nan]] * 20)
    scores[:4, 1] = 1.0
    costs = np.array([[1.0, 10.0]] * 40)
    texts = [f"prompt {i}" for i in range(40)]
    table = OutcomeTable(texts, texts, ["auto"] * 40, ["cheap", "strong"], scores, costs, "")
    rows = np.arange(40, dtype=np.intp)
    logged, strong = np.zeros(40, dtype=np.intp), np.ones(40, dtype=np.intp)
    settings = Settings(("cheap", "strong"), samples=200)
    thin = compare(table, rows, rows, strong, logged, settings)
    assert thin["candidate"]["matched"] == 4 and thin["support"] == 0.1
    assert thin["intervals"]["quality_diff"][0] > 0 and not thin["candidate_wins"]
    assert compare(table, rows, rows, strong, logged, replace(settings, min_support=0.05))[
        "candidate_wins"
    ]


async def test_the_learn_block_proposes_on_schedule_and_applies_nothing_by_default(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'scheduled.db'}"
    data = config_data(upstream, url)
    store = await opened_with_prompts(url)
    traffic = Traffic(upstream, store, data)
    learn = {"enabled": True, "routes": {"auto": {}}, "min_labelled": 30, "interval_s": 60}
    replicas = [Gateway(parse_config({**data, "learn": learn})) for _ in range(2)]
    now = [time.time()]
    monitors = [Monitor(g, store, clock=lambda: now[0]) for g in replicas]
    try:
        await traffic.mixed(20)
        await traffic.explored(20)
        [result] = (await monitors[0].tick())["learned"]
        assert result["status"] == "proposed", result
        assert (await monitors[0].tick())["learned"] == []
        [other] = (await monitors[1].tick())["learned"]
        assert other["status"] == "waiting"
        [entry] = await read_calibrations(store, "auto")
        assert entry["actor"] == "learn" and not entry["applied"]
        assert all(router_name(g, "auto") == "fixed" for g in replicas)
    finally:
        await traffic.close()
        for gateway in replicas:
            await gateway.aclose()
        await store.close()
