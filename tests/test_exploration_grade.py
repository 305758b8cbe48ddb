"""Graded exploration: a route exploring at random with `explore.judge` has a judge
grade its served answers, through a real gateway server with a request store on a
FakeUpstream. The verdicts land in `judgments`, where learning reads them as labels
of the served model; the judge calls are logged and billed on the exploration line,
stop at its cap, and never touch the answers.

Route `auto` has three tiers, cheapest first: cheap (cheap-model), mid
(cheap-b-model) and strong (strong-model); its `fixed` router picks cheap. The judge
(`judge-model`) says Yes with logprob log(0.8) to strong-model's answers and No with
logprob log(0.9) to the others', so P("Yes") is 0.8 or 0.1.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.helpers import gateway_data, settle
from tierwise import Gateway, parse_config
from tierwise.config import GatewayConfig, load_config
from tierwise.errors import ConfigError
from tierwise.evaluation.replay import build_log, fetch
from tierwise.exploration_grade import read_score
from tierwise.learning.from_log import collect
from tierwise.observability.report import summarize
from tierwise.record import RequestRecord
from tierwise.routing.explore import GRADE_ROUTER
from tierwise.server.app import GATEWAY
from tierwise.server.run import Running, running
from tierwise.store import Store
from tierwise.store.inspect import select
from tierwise.store.tables import JudgmentRow
from tierwise.testing import FakeUpstream, Scripted
from tierwise.types import ChatRequest, ChatResponse, Choice, Message, TokenLogprob

TIERS = {"cheap": ["mini"], "mid": ["mini-b"], "strong": ["big"]}
JUDGE_PRICE = {"input": "0.10", "output": "0.40"}
P_STRONG, P_OTHER = 0.8, 0.1


def config(
    base_url: str, explore: dict[str, Any] | None, store_url: str | None = None
) -> GatewayConfig:
    return parse_config(config_data(base_url, explore, store_url))


def config_data(
    base_url: str, explore: dict[str, Any] | None, store_url: str | None = None
) -> dict[str, Any]:
    data = gateway_data(base_url, tiers=TIERS)
    if store_url is not None:
        data["store"] = {"url": store_url, "capture_prompts": True}
    data["deployments"]["judge"] = {
        "model": "judge-model",
        "api_base": base_url + "/v1",
        "price": JUDGE_PRICE,
    }
    route: dict[str, Any] = {"router": {"kind": "fixed", "target": "cheap"}, "baseline": "big"}
    if explore is not None:
        route["explore"] = explore
    data["routes"] = {"auto": route}
    return data


def judge_by_model(messages: Sequence[Any]) -> Scripted:
    """Yes (P 0.8) to strong-model's answer, No (P("Yes") 0.1) to any other."""
    answer = str(messages[-2]["content"])
    if "strong-model" in answer:
        return Scripted("Yes", logprob=math.log(P_STRONG))
    return Scripted("No", logprob=math.log(1 - P_OTHER))


@asynccontextmanager
async def serving(
    upstream: FakeUpstream, explore: dict[str, Any] | None, store_url: str, seed: int = 3
) -> AsyncIterator[Running]:
    upstream.respond("judge-model", judge_by_model)
    async with running(config(upstream.base_url, explore, store_url)) as server:
        server.app[GATEWAY].exploration.rng = random.Random(seed)
        yield server


async def send(server: Running, n: int) -> list[tuple[str, str]]:
    """`n` questions, one at a time, each graded (or not) before the next: the
    request id and answer text of each."""
    sent = []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            body = {"model": "auto", "messages": [{"role": "user", "content": f"question {i}"}]}
            async with session.post(server.base_url + "/v1/chat/completions", json=body) as r:
                assert r.status == 200
                payload = await r.json()
                sent.append(
                    (r.headers["x-request-id"], payload["choices"][0]["message"]["content"])
                )
            await server.app[GATEWAY].exploration.drain()
    return sent


async def judgments(store: Store) -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in await select(store, "SELECT * FROM judgments")}


async def grade_records(store: Store) -> list[dict[str, Any]]:
    statement = "SELECT * FROM requests WHERE router = {} ORDER BY created_at"
    return await select(store, statement, GRADE_ROUTER)


# --- (a) verdicts label the served model ------------------------------------------------


async def test_a_judge_in_random_mode_labels_each_served_answer(
    upstream: FakeUpstream, store_url: str
) -> None:
    explore = {"share": 1.0, "max_spend_share": 1.0, "judge": "judge"}
    async with serving(upstream, explore, store_url) as server:
        sent = await send(server, 12)
        store = await settle(server, 24)
        outcomes = await collect(store, 0.0, "auto")
        verdicts = await store.outcome_verdicts(0.0)
        kept = await judgments(store)
        grades = await grade_records(store)
        log = build_log(*await fetch(store_url, "auto"), "log")
    assert upstream.count("judge-model") == 12
    assert set(verdicts) == {rid for rid, _ in sent} == set(kept)
    assert outcomes.unlabelled == 0 and len(outcomes.rows) == 12
    served = {row.prompt_id: next(iter(row.scores)) for row in outcomes.rows}
    assert set(served.values()) == {"cheap-model", "cheap-b-model", "strong-model"}
    for row in outcomes.rows:
        model = served[row.prompt_id]
        expected = P_STRONG if model == "strong-model" else P_OTHER
        assert row.scores == {model: pytest.approx(expected)} and row.chosen == model
    assert "judge-model" not in outcomes.models
    for rid, answer in sent:
        expected = P_STRONG if "strong-model" in answer else P_OTHER
        assert verdicts[rid] == pytest.approx(expected)
        assert kept[rid]["judge"] == "judge" and kept[rid]["experiment"] is None
        assert kept[rid]["cost_pusd"] > 0
    # the judge calls are requests of the route without a prompt, never a decision
    assert len(grades) == 12 and all(g["prompt"] is None for g in grades)
    assert {g["final_model"] for g in grades} == {"judge-model"}
    reasons = {g["decision_reason"].split(";")[0] for g in grades}
    assert reasons == {f"grade of {rid}" for rid, _ in sent}
    assert "judge-model" not in log.table.models and len(log.table) == 12


async def test_without_a_judge_no_answer_is_graded(upstream: FakeUpstream, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    async with serving(upstream, {"share": 1.0, "max_spend_share": 1.0}, url) as server:
        await send(server, 6)
        store = await settle(server, 6)
        outcomes = await collect(store, 0.0)
        assert await judgments(store) == {} and await grade_records(store) == []
    assert upstream.count("judge-model") == 0
    assert outcomes.rows == [] and outcomes.unlabelled == 6


async def test_a_reloaded_gateway_keeps_its_verdicts_too(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    upstream.respond("judge-model", judge_by_model)
    explore: dict[str, Any] = {"share": 1.0, "max_spend_share": 1.0}
    data = config_data(upstream.base_url, explore, url)
    data["server"] = {"allow_unauthenticated_admin": True}
    path = tmp_path / "tierwise.yaml"
    path.write_text(yaml.safe_dump(data))
    async with running(load_config(path), path=path) as server:
        before = await send(server, 2)
        explore["judge"] = "judge"
        path.write_text(yaml.safe_dump(data))
        async with (
            aiohttp.ClientSession() as session,
            session.post(server.base_url + "/admin/reload") as response,
        ):
            assert (await response.json())["status"] == "reloaded"
        after = await send(server, 3)
        store = await settle(server, 8)
        kept = await judgments(store)
    assert set(kept) == {rid for rid, _ in after} and not set(kept) & {r for r, _ in before}


@pytest.mark.parametrize(("share", "graded"), [(1.0, 6), (1e-9, 0)])
async def test_explored_answers_are_always_graded_and_the_rest_at_judge_share(
    upstream: FakeUpstream, tmp_path: Path, share: float, graded: int
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    explore = {"share": share, "max_spend_share": 1.0, "judge": "judge", "judge_share": 0.0}
    async with serving(upstream, explore, url) as server:
        await send(server, 6)
        store = await settle(server, 6 + graded)
        kept = await judgments(store)
    assert len(kept) == graded


# --- (b) billed on the exploration line, up to its cap -------------------------------------


async def test_judge_calls_are_exploration_spend_and_stop_at_the_cap(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    # a share so small that no request is drawn at random: only the judge explores;
    # grading every answer would cost about a quarter of the route's spend
    explore = {"share": 1e-9, "max_spend_share": 0.1, "judge": "judge", "judge_share": 1.0}
    async with serving(upstream, explore, url) as server:
        sent = await send(server, 30)
        store = await settle(server, 30 + upstream.count("judge-model"))
        grades = await grade_records(store)
        kept = await judgments(store)
        report = await summarize(store, 0.0)
    flags = [rid in kept for rid, _ in sent]
    assert 2 <= len(grades) <= 10 and len(kept) == len(grades)
    assert all(g["explored"] == 1 for g in grades)
    assert all(g["exploration_cost_usd"] == g["cost_pusd"] > 0 for g in grades)
    assert sum(k["cost_pusd"] for k in kept.values()) == sum(g["cost_pusd"] for g in grades)
    spent = sum((Decimal(g["cost_pusd"]) for g in grades), Decimal(0)) / 10**12
    assert report.money.exploration_usd == spent
    assert spent <= report.money.spend_usd * Decimal("0.1")
    # grading waits for the route's spend, then stops each time it reaches the cap
    first = flags.index(True)
    assert first >= 2 and not all(flags[first:])


async def test_grade_records_carry_the_judge_cost_on_the_exploration_line(
    upstream: FakeUpstream,
) -> None:
    upstream.respond("judge-model", judge_by_model)
    kept: list[JudgmentRow] = []
    seen: list[RequestRecord] = []

    async def keep(row: JudgmentRow) -> None:
        kept.append(row)

    explore = {"share": 1.0, "max_spend_share": 1.0, "judge": "judge"}
    async with Gateway(config(upstream.base_url, explore), sinks=[seen.append]) as gw:
        gw.exploration.keep_verdict = keep
        served = (await gw.chat(ChatRequest([Message("user", "hi")], model="auto"))).record
        await gw.exploration.drain()
    served_record, grade = seen
    assert served_record is served and served.cost.exploration_usd == served.cost.total_usd
    d = grade.decision
    assert d is not None and d.router == GRADE_ROUTER and d.explored and d.target == "judge"
    assert grade.route == "auto" and grade.prompt is None and grade.answer in ("Yes", "No")
    assert grade.cost.exploration_usd == grade.cost.total_usd == grade.attempts[-1].cost_usd > 0
    assert grade.cost.baseline_usd == 0
    assert [r["request_id"] for r in kept] == [served.request_id]
    assert Decimal(kept[0]["cost_pusd"]) / 10**12 == grade.cost.total_usd


# --- (c) a judge outage ---------------------------------------------------------------------


async def test_a_judge_outage_leaves_answers_alone_and_writes_no_verdict(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    upstream.set_failure_rate("judge-model", 1.0, "500")
    explore = {"share": 1.0, "max_spend_share": 1.0, "judge": "judge"}
    async with serving(upstream, explore, url) as server:
        sent = await send(server, 5)
        store = await settle(server, 10)
        grades = await grade_records(store)
        assert await judgments(store) == {}
        assert await store.outcome_verdicts(0.0) == {}
    assert all(answer.startswith("Answer from ") for _, answer in sent)
    assert upstream.count("judge-model") >= 3  # then its breaker opens: skipped
    assert len(grades) == 5 and {g["status"] for g in grades} == {"error"}
    assert all("judge failed" in g["decision_reason"] for g in grades)


async def test_a_judge_that_says_neither_yes_nor_no_writes_no_verdict(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    explore = {"share": 1.0, "max_spend_share": 1.0, "judge": "judge"}
    async with serving(upstream, explore, url) as server:
        upstream.respond("judge-model", lambda messages: Scripted("Maybe", logprob=-0.1))
        await send(server, 3)
        store = await settle(server, 6)
        assert await judgments(store) == {}
        grades = await grade_records(store)
    assert {g["status"] for g in grades} == {"ok"} and len(grades) == 3


def test_a_score_without_logprobs_is_read_from_the_first_word() -> None:
    def reply(text: str, logprob: float | None = None) -> ChatResponse:
        tokens = None if logprob is None else [TokenLogprob(text.partition(" ")[0], logprob)]
        return ChatResponse(
            "r", "judge-model", [Choice(0, Message("assistant", text), None, tokens)]
        )

    assert read_score(reply("Yes."))[0] == 1.0
    assert read_score(reply("no, it is wrong"))[0] == 0.0
    assert read_score(reply("Perhaps"))[0] is None
    assert read_score(reply("Yes", math.log(0.7)))[0] == pytest.approx(0.7)
    assert read_score(reply("No", math.log(0.7)))[0] == pytest.approx(0.3)
    assert read_score(reply("Perhaps", -0.01))[0] is None


# --- concurrency ---------------------------------------------------------------------------


async def test_grades_beyond_the_concurrency_are_skipped_and_counted(
    upstream: FakeUpstream,
) -> None:
    upstream.respond("judge-model", judge_by_model)
    upstream.latency_s = 0.2
    kept: list[JudgmentRow] = []

    async def keep(row: JudgmentRow) -> None:
        kept.append(row)

    explore = {"share": 1.0, "max_spend_share": 1.0, "judge": "judge"}
    async with Gateway(config(upstream.base_url, explore)) as gw:
        gw.exploration.keep_verdict, gw.exploration.concurrency = keep, 1
        asks = [gw.chat(ChatRequest([Message("user", f"q{i}")], model="auto")) for i in range(4)]
        await asyncio.gather(*asks)
        await gw.exploration.drain()
        assert gw.exploration.skipped == 3 and gw.exploration.grading == 0
    assert len(kept) == 1 and upstream.count("judge-model") == 1


async def test_no_grade_without_a_place_to_keep_the_verdict(upstream: FakeUpstream) -> None:
    explore = {"share": 1.0, "max_spend_share": 1.0, "judge": "judge"}
    async with Gateway(config(upstream.base_url, explore)) as gw:
        await gw.chat(ChatRequest([Message("user", "hi")], model="auto"))
        await gw.exploration.drain()
    assert upstream.count("judge-model") == 0


# --- (d) configuration ----------------------------------------------------------------------


def test_config_accepts_a_judge_in_random_mode_and_checks_it() -> None:
    base = "http://127.0.0.1:9"
    explore = config(base, {"share": 0.1, "judge": "judge"}).routes["auto"].explore
    assert explore is not None and explore.mode == "random"
    assert explore.judge == "judge" and explore.judge_share == 0.1
    tier = config(base, {"share": 0.1, "judge": "strong", "judge_share": 0.25})
    assert tier.routes["auto"].explore is not None
    assert tier.routes["auto"].explore.judge_share == 0.25
    with pytest.raises(ConfigError, match=r"explore\.judge: unknown deployment or tier 'nope'"):
        config(base, {"share": 0.1, "judge": "nope"})
    for share in (1.5, -0.1):
        with pytest.raises(ConfigError, match="judge_share"):
            config(base, {"share": 0.1, "judge": "judge", "judge_share": share})


def compare_by_model(messages: Sequence[Any]) -> Scripted:
    """SAME when answer A (the shadow's) is strong-model's, WORSE otherwise."""
    text = str(messages[-1]["content"])
    shadow = text.split("Answer A:\n", 1)[1].split("\n\nAnswer B:", 1)[0]
    return Scripted("SAME" if "strong-model" in shadow else "WORSE")


async def test_a_shadow_calls_verdict_is_its_label_for_learning(
    upstream: FakeUpstream, store_url: str
) -> None:
    explore = {"share": 1.0, "max_spend_share": 1.0, "mode": "shadow", "judge": "judge"}
    async with serving(upstream, explore, store_url) as server:
        upstream.respond("judge-model", compare_by_model)
        sent = await send(server, 8)
        store = await settle(server, 16)
        outcomes = await collect(store, 0.0, "auto")
        shadows = await select(store, "SELECT * FROM requests WHERE router = 'explore:shadow'")
        kept = await judgments(store)
    assert len(shadows) == 8 and set(kept) == {s["request_id"] for s in shadows}
    labelled = {row.prompt_id: row for row in outcomes.rows}
    assert set(labelled) == set(kept) and outcomes.unlabelled == len(sent)
    for shadow in shadows:
        row = labelled[shadow["request_id"]]
        model = shadow["final_model"]
        assert model in ("cheap-b-model", "strong-model") and row.chosen is None
        assert row.scores == {model: 1.0 if model == "strong-model" else 0.0}
        assert kept[shadow["request_id"]]["judge"] == "judge"
