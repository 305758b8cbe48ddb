"""A/B experiments end to end: sticky assignment (also across two gateway processes),
variants served as configured, a planted quality drop stopped and rolled back, an
A/A run left alone, and the status a person reads."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import CHEAP_PRICE as CHEAP
from tests.helpers import GatewayFactory, Replica, gateway_config, gateway_data
from tierwise import parse_config
from tierwise.cli import app as cli_app
from tierwise.experiments.assign import assign, bucket, pick
from tierwise.experiments.judge import Judge, parse_verdict
from tierwise.experiments.log import variant_data
from tierwise.experiments.monitor import Monitor
from tierwise.experiments.status import experiment_report, render
from tierwise.gateway import Gateway, Origin
from tierwise.store import Feedback, RecordWriter, Store, open_store
from tierwise.store.inspect import select
from tierwise.testing import FakeUpstream
from tierwise.types import ChatRequest, Message

VARIANTS = {"routed": {}, "always_strong": {"target": "strong"}}


def experiment(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "route": "auto",
        "unit": "user",
        "control": "always_strong",
        "variants": VARIANTS,
        "min_effect": 0.05,
        "guardrails": [{"metric": "satisfaction", "max_drop": 0.02, "min_samples": 50}],
    }
    return {"ab": {**spec, **changes}}


def ask(user: str | None = None, **metadata: str) -> ChatRequest:
    return ChatRequest(
        [Message("user", "What are your opening hours?")], user=user, metadata=metadata
    )


def test_buckets_split_by_weight_and_differ_between_experiments() -> None:
    units = [f"user-{i}" for i in range(20_000)]
    chosen = [assign("ab", u, [("a", 1.0), ("b", 3.0)]) for u in units]
    assert abs(chosen.count("a") / len(units) - 0.25) < 0.01
    first = np.array([bucket("one", u) for u in units])
    second = np.array([bucket("two", u) for u in units])
    assert abs(float(np.corrcoef(first, second)[0, 1])) < 0.03
    assert pick(0.0, [("a", 1), ("b", 1)]) == "a" and pick(0.999, [("a", 1), ("b", 1)]) == "b"


async def test_each_variant_is_served_by_its_target_and_labelled(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(experiments=experiment())
    seen: dict[str, set[str]] = {}
    for i in range(40):
        user = f"user-{i}"
        first = (await gateway.chat(ask(user))).record
        again = (await gateway.chat(ask(user))).record
        assert first.experiment == "ab" and first.variant == again.variant
        assert first.route == "auto"
        seen.setdefault(first.variant or "", set()).add(first.final_tier or "")
    assert seen == {"routed": {"cheap"}, "always_strong": {"strong"}}


async def test_requests_without_the_unit_are_not_in_the_experiment(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(experiments=experiment(unit="session"))
    outside = (await gateway.chat(ask("user-1"))).record
    assert outside.experiment is None and outside.final_tier == "cheap"
    inside = (await gateway.chat(ask("user-1", session_id="s-42"))).record
    assert inside.experiment == "ab"
    assert inside.variant == assign("ab", "s-42", [("routed", 1.0), ("always_strong", 1.0)])


async def test_an_experiment_by_user_assigns_by_the_keys_user_when_the_request_names_none(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(experiments=experiment())
    key = Origin(caller="k", user="alice@x")
    keyed = (await gateway.chat(ask(), origin=key)).record
    assert keyed.experiment == "ab" and keyed.user == keyed.unit_key == "alice@x"
    assert keyed.variant == assign("ab", "alice@x", [("routed", 1.0), ("always_strong", 1.0)])
    named = (await gateway.chat(ask("bob"), origin=key)).record
    assert named.unit_key == named.user == "bob"
    nobody = (await gateway.chat(ask())).record
    assert nobody.experiment is None


def test_two_experiments_on_one_route_are_refused(upstream: FakeUpstream) -> None:
    config = gateway_config(
        upstream.base_url, experiments={**experiment(), "other": experiment()["ab"]}
    )
    with pytest.raises(Exception, match="one route runs one experiment"):
        Gateway(config)


async def test_assignment_is_the_same_in_two_gateway_processes(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(gateway_data(upstream.base_url, experiments=experiment())))
    replicas = [Replica(path, tmp_path / f"r{i}.log") for i in range(2)]
    try:
        await asyncio.gather(*(r.ready() for r in replicas))
        async with aiohttp.ClientSession() as session:
            labels = [
                [await _variant(session, r, f"user-{i}") for r in replicas] for i in range(30)
            ]
    finally:
        for replica in replicas:
            replica.stop()
    assert all(a == b for a, b in labels)
    assert {a for a, _ in labels} == {"ab/routed", "ab/always_strong"}


async def _variant(session: aiohttp.ClientSession, replica: Replica, user: str) -> str:
    body = {"model": "auto", "user": user, "messages": [{"role": "user", "content": "hi"}]}
    async with session.post(replica.url + "/v1/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        return response.headers["x-tierwise-experiment"]


async def _traffic(
    gateway: Gateway, store: Store, users: int, satisfaction: dict[str, float], seed: int
) -> None:
    """One request per user, then a thumbs up with the variant's probability."""
    writer = RecordWriter(store)
    await writer.start()
    gateway.sinks.append(writer.submit)
    records = [(await gateway.chat(ask(f"user-{i}"))).record for i in range(users)]
    await writer.close()
    gateway.sinks.remove(writer.submit)
    rng = random.Random(seed)
    for record in records:
        liked = rng.random() < satisfaction[record.variant or ""]
        item = Feedback(
            f"fb-{record.request_id}",
            record.request_id,
            time.time(),
            float(liked),
            "1" if liked else "0",
        )
        assert await store.add_feedback(item)


async def test_a_planted_quality_drop_is_stopped_and_rolled_back(
    make_gateway: GatewayFactory, store_url: str
) -> None:
    gateway = make_gateway(experiments=experiment())
    store = open_store(store_url)
    await store.migrate()
    try:
        await _traffic(gateway, store, 400, {"routed": 0.45, "always_strong": 0.9}, seed=5)
        monitor = Monitor(gateway, store)
        stopped = (await monitor.tick())["stopped"]
        assert [(e.action, e.serving) for e in stopped] == [("rollback", "always_strong")]
        assert "satisfaction" in stopped[0].reason
        after = [(await gateway.chat(ask(f"user-{i}"))).record for i in range(20)]
        assert {r.final_tier for r in after} == {"strong"}
        assert {r.experiment for r in after} == {None}
        state = gateway.experiments.get("ab")
        report = await experiment_report(store, state, time.time(), bootstrap=400)
        assert report["status"] == "stopped" and report["rolled_back"]
        comparison = report["comparisons"][0]
        satisfaction = comparison["metrics"]["satisfaction"]
        assert satisfaction["upper"] < -0.02 and satisfaction["significant"]
        assert comparison["savings"]["estimate"] > 0.5
        assert "routed saves" in comparison["summary"]
        booted = comparison["bootstrap"]
        assert booted["satisfaction"]["upper"] < 0 < booted["savings"]["lower"]
        lower, upper = booted["savings"]["lower"], booted["savings"]["upper"]
        assert lower - 1e-9 <= comparison["savings"]["estimate"] <= upper + 1e-9
        restarted = Monitor(make_gateway(experiments=experiment()), store)
        await restarted.tick()
        assert restarted.gateway.experiments.get("ab").serving == "always_strong"
    finally:
        await store.close()


async def test_an_a_a_experiment_keeps_running(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    same = {"a": {"target": "strong"}, "b": {"target": "strong"}}
    gateway = make_gateway(experiments=experiment(variants=same, control="a"))
    store = open_store(f"sqlite:///{tmp_path / 'aa.db'}")
    await store.migrate()
    try:
        await _traffic(gateway, store, 300, {"a": 0.8, "b": 0.8}, seed=9)
        assert (await Monitor(gateway, store).tick())["stopped"] == []
        data = await variant_data(store, "ab")
        assert sum(d.requests for d in data.values()) == 300
        assert abs(data["a"].cost.mean - data["b"].cost.mean) < 1e-9
    finally:
        await store.close()


async def test_status_reads_plainly_from_the_cli(
    make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    gateway = make_gateway(experiments=experiment())
    store = open_store(url)
    await store.migrate()
    await _traffic(gateway, store, 120, {"routed": 0.8, "always_strong": 0.8}, seed=3)
    await store.close()
    data = gateway_data(upstream.base_url, experiments=experiment(), store={"url": url})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    result = await _cli("experiment", "status", "ab", "--config", str(path), "--bootstrap", "200")
    assert result.exit_code == 0, result.output
    assert "routed saves" in result.output and "not significant" in result.output
    assert "requests" in result.output and "bootstrap (200 resamples)" in result.output
    stop = await _cli("experiment", "stop", "ab", "--config", str(path))
    assert stop.exit_code == 0 and "serving always_strong" in stop.output
    listed = await _cli("experiment", "list", "--config", str(path))
    assert "stopped" in listed.output
    assert "experiment ab on route auto" in render(
        {**_empty_report(), "name": "ab", "route": "auto"}
    )


async def _cli(*args: str) -> Any:
    """The CLI in a worker thread: it runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))


def _empty_report() -> dict[str, Any]:
    keys = ("status", "serving", "reason")
    return {k: "" for k in keys} | {"variants": {}, "comparisons": [], "guardrails": []}


def judged_config(base_url: str) -> dict[str, Any]:
    judge = {"model": "judge-model", "api_base": base_url + "/v1", "price": CHEAP}
    data = gateway_data(base_url)
    data["deployments"]["judge"] = judge
    data["experiments"] = experiment(
        judge={"judge": "judge", "reference": "strong", "sample": 1.0},
        guardrails=[{"metric": "judge", "max_drop": 0.05, "min_samples": 5}],
    )
    return data


async def test_a_sampled_judge_scores_answers_against_the_strong_model(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    gateway = Gateway(parse_config(judged_config(upstream.base_url)))
    store = open_store(f"sqlite:///{tmp_path / 'judge.db'}")
    await store.migrate()
    judge = Judge(gateway, store, rng=random.Random(1), concurrency=16)
    writer = RecordWriter(store)
    await writer.start()
    gateway.sinks += [writer.submit, judge]
    question = "Name a colour [[reply=WORSE model=judge-model]]"
    try:
        records = [
            (await gateway.chat(ChatRequest([Message("user", question)], user=f"u{i}"))).record
            for i in range(12)
        ]
        await asyncio.gather(*judge.tasks)
        await writer.flush()
        rows = await select(store, "SELECT * FROM judgments ORDER BY request_id")
        assert sorted(r["request_id"] for r in rows) == sorted(r.request_id for r in records)
        assert {r["score"] for r in rows} == {0.0} and {r["detail"] for r in rows} == {"WORSE"}
        assert all(r["cost_pusd"] > 0 for r in rows)
        data = await variant_data(store, "ab")
        assert sum(d.judge.n for d in data.values()) == 12
        assert sum(d.judge_cost_usd for d in data.values()) > 0
        logged = await select(store, "SELECT route, COUNT(*) AS n FROM requests GROUP BY route")
        assert {r["route"]: r["n"] for r in logged} == {"auto": 12, "strong": 12, "judge": 12}
    finally:
        await judge.aclose()
        await writer.close()
        await store.close()
        await gateway.aclose()


async def test_a_verdict_the_store_cannot_take_is_logged_in_one_line(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = Gateway(parse_config(judged_config(upstream.base_url)))
    store = open_store("postgresql://postgres@127.0.0.1:1/test")
    judge = Judge(gateway, store, rng=random.Random(1))
    gateway.sinks.append(judge)
    question = "Name a colour [[reply=SAME model=judge-model]]"
    try:
        with caplog.at_level("WARNING"):
            await gateway.chat(ChatRequest([Message("user", question)], user="u1"))
            (task,) = judge.tasks
            await task
    finally:
        await judge.aclose()
        await gateway.aclose()
    assert task.exception() is None
    lines = [r.getMessage() for r in caplog.records if "judge" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("not stored: the request store is unreachable")


def test_verdicts_are_parsed_or_left_unscored() -> None:
    assert parse_verdict("Same.").score == 1.0
    assert parse_verdict("I think A is WORSE than B").score == 0.0
    assert parse_verdict("no idea").score is None


async def test_users_with_several_requests_are_counted_as_units(
    make_gateway: GatewayFactory, store_url: str
) -> None:
    gateway = make_gateway(experiments=experiment())
    store = open_store(store_url)
    await store.migrate()
    writer = RecordWriter(store)
    await writer.start()
    gateway.sinks.append(writer.submit)
    try:
        records = [(await gateway.chat(ask(f"user-{i % 10}"))).record for i in range(30)]
        await writer.flush()
        for record in records:
            item = Feedback(f"fb-{record.request_id}", record.request_id, time.time(), 1.0, "1")
            assert await store.add_feedback(item)
        report = await experiment_report(store, gateway.experiments.get("ab"), time.time())
        sat = [v["satisfaction"] for v in report["variants"].values()]
        assert sum(s["units"] for s in sat) == 10 and sum(s["n"] for s in sat) == 30
        assert {r.unit_key for r in records} == {f"user-{i}" for i in range(10)}
    finally:
        await writer.close()
        await store.close()


async def test_the_cli_refuses_a_second_experiment_on_a_busy_route(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    other = {**experiment()["ab"], "enabled": False}
    data = gateway_data(
        upstream.base_url,
        experiments={**experiment(), "other": other},
        store={"url": f"sqlite:///{tmp_path / 'busy.db'}"},
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    refused = await _cli("experiment", "start", "other", "--config", str(path))
    assert refused.exit_code == 1
    assert "experiment 'ab' already runs on route 'auto'" in refused.output
    await _cli("experiment", "stop", "ab", "--config", str(path))
    started = await _cli("experiment", "start", "other", "--config", str(path))
    assert started.exit_code == 0 and "other: start" in started.output
