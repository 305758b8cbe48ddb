"""Exploration with known propensities, through a real gateway on a FakeUpstream.

Route `auto` has three tiers, cheapest first: cheap (mini, cheap-model), mid (mini-b,
cheap-b-model) and strong (big, strong-model); its `fixed` router always picks one
tier, so with share `s` a tier is chosen with probability `s/3 + (1 - s)[router's]`.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from tests.helpers import gateway_data
from tierwise import Gateway, parse_config
from tierwise.config import GatewayConfig
from tierwise.errors import ConfigError
from tierwise.evaluation.replay import build_log, fetch, replay, replay_point
from tierwise.experiments.judge import judge_prompt
from tierwise.observability.metrics import Metrics
from tierwise.observability.report import summarize
from tierwise.record import Decision, RequestRecord
from tierwise.routing.explore import (
    COUNTER_LIMIT,
    SHADOW_ROUTER,
    ExplorationBudget,
    propensity,
    scopes,
    within_caps,
)
from tierwise.store import Capture, RecordWriter, open_store
from tierwise.testing import FakeUpstream
from tierwise.types import ChatRequest, Message

TIERS = {"cheap": ["mini"], "mid": ["mini-b"], "strong": ["big"]}
JUDGE = {"model": "judge-model", "price": {"input": "1", "output": "2"}}


def config(
    base_url: str, explore: dict[str, Any] | None, target: str = "cheap", **extra: Any
) -> GatewayConfig:
    data = gateway_data(base_url, tiers=TIERS, **extra)
    data["deployments"]["judge"] = {**JUDGE, "api_base": base_url + "/v1"}
    route: dict[str, Any] = {"router": {"kind": "fixed", "target": target}, "baseline": "big"}
    if explore is not None:
        route["explore"] = explore
    data["routes"] = {"auto": route}
    return parse_config(data)


def ask(text: str = "what is 2+2") -> ChatRequest:
    return ChatRequest([Message("user", text)], model="auto")


async def run(gateway: Gateway, n: int, drain: bool = True) -> list[RequestRecord]:
    records = []
    for i in range(n):
        records.append((await gateway.chat(ask(f"question {i}"))).record)
        if drain:
            await gateway.exploration.drain()
    return records


# --- the propensity formula and the caps, as pure functions ----------------------------


def test_propensity_formula_mixes_uniform_and_the_routers_choice() -> None:
    tiers = ["cheap", "mid", "strong"]
    fixed = Decision("strong")
    assert propensity(0.3, tiers, fixed, "strong") == pytest.approx(0.1 + 0.7)
    assert propensity(0.3, tiers, fixed, "cheap") == pytest.approx(0.1)
    assert propensity(0.0, tiers, fixed, "strong") == 1.0
    unsure = Decision("mid", propensity=0.5)  # a router that itself picks at random
    assert propensity(0.2, tiers, unsure, "mid") == pytest.approx(0.2 / 3 + 0.8 * 0.5)
    assert propensity(0.2, tiers, Decision("a>b"), "a>b") == pytest.approx(0.8)


def test_caps_allow_up_to_the_share_of_route_spend_and_the_daily_limit() -> None:
    d, share = Decimal, Decimal("0.05")
    assert not within_caps(d(0), d(0), None, share)  # waits for the route's first request
    assert within_caps(d(0), d(0), None, d(1))
    assert not within_caps(d("0.06"), d(1), None, share)
    assert within_caps(d("0.05"), d(1), None, share)
    assert not within_caps(d("0.01"), d(100), d("0.01"), share)
    # room for one more explored request, which adds to the route's spend as well
    assert within_caps(d("0.031"), d(1), None, share, headroom=d("0.02"))
    assert not within_caps(d("0.032"), d(1), None, share, headroom=d("0.02"))
    assert not within_caps(d("0.2"), d(100), d("0.25"), share, headroom=d("0.1"))
    assert within_caps(d("0.1"), d(100), d("0.25"), share, headroom=d("0.1"))


# --- random exploration through the gateway ---------------------------------------------


async def test_share_zero_never_explores_and_logs_propensity_one(
    upstream: FakeUpstream,
) -> None:
    async with Gateway(config(upstream.base_url, {"share": 0.0}), rng=random.Random(1)) as gw:
        records = await run(gw, 30)
    assert {r.decision.target for r in records if r.decision} == {"cheap"}
    assert all(r.decision and r.decision.propensity == 1.0 for r in records)
    assert not any(r.decision and r.decision.explored for r in records)
    assert all(r.cost.exploration_usd == 0 for r in records)
    assert upstream.count("cheap-model") == 30


async def test_share_one_draws_tiers_uniformly(upstream: FakeUpstream) -> None:
    explore = {"share": 1.0, "max_spend_share": 1.0}
    async with Gateway(config(upstream.base_url, explore), rng=random.Random(11)) as gw:
        records = await run(gw, 600, drain=False)
        await gw.exploration.drain()
    drawn = Counter(r.decision.target for r in records if r.decision)
    observed = np.array([drawn[t] for t in TIERS])
    chi2 = float(((observed - 200) ** 2 / 200).sum())
    assert chi2 < 13.8, drawn  # chi-square, 2 degrees of freedom, p = 0.001
    assert all(r.decision and r.decision.explored for r in records)
    assert [r.decision.propensity for r in records if r.decision] == [pytest.approx(1 / 3)] * 600
    served = Counter(r.final_tier for r in records)
    assert served == drawn  # the drawn tier is the one that answered
    assert all(r.cost.exploration_usd == r.cost.total_usd > 0 for r in records)


async def test_logged_propensities_match_the_formula(upstream: FakeUpstream) -> None:
    explore = {"share": 0.3, "max_spend_share": 1.0}
    cfg = config(upstream.base_url, explore, target="strong")
    async with Gateway(cfg, rng=random.Random(5)) as gw:
        records = await run(gw, 400, drain=False)
    expected = {"cheap": 0.1, "mid": 0.1, "strong": 0.1 + 0.7}
    for r in records:
        assert r.decision is not None
        assert r.decision.propensity == pytest.approx(expected[r.decision.target])
        if r.decision.target != "strong":
            assert r.decision.explored and r.decision.router == "explore>fixed"
    strong = sum(r.decision.target == "strong" for r in records if r.decision) / len(records)
    assert strong == pytest.approx(0.8, abs=0.07)
    explored = sum(bool(r.decision and r.decision.explored) for r in records) / len(records)
    assert explored == pytest.approx(0.3, abs=0.07)


# --- shadow calls -------------------------------------------------------------------------


async def test_shadow_call_runs_after_the_response_is_judged_and_billed_apart(
    upstream: FakeUpstream,
) -> None:
    question = "what is 2+2"
    upstream.script("cheap-model", question, "four")
    for model in ("cheap-b-model", "strong-model"):
        upstream.script(model, question, "4")
    verdict_prompt = judge_prompt(question, "4", "four")[-1].content
    assert isinstance(verdict_prompt, str)
    upstream.script("judge-model", verdict_prompt, "SAME")
    explore = {"share": 1.0, "mode": "shadow", "judge": "judge", "max_spend_share": 1.0}
    seen: list[RequestRecord] = []
    metrics = Metrics()
    cfg = config(upstream.base_url, explore, store={"capture_prompts": True})
    async with Gateway(cfg, rng=random.Random(2), sinks=[seen.append, metrics.observe]) as gw:
        result = await gw.chat(ask(question))
        assert result.response.text() == "four"
        assert [r.model for r in upstream.requests] == ["cheap-model"]
        assert seen == [result.record]
        await gw.exploration.drain()
    served, shadow = seen
    assert [r.model for r in upstream.requests][1:] in (
        ["cheap-b-model", "judge-model"],
        ["strong-model", "judge-model"],
    )
    assert shadow.started_at >= served.started_at + served.latency_ms / 1000 - 1e-3
    assert served.decision and served.decision.propensity == 1.0
    assert not served.decision.explored and served.cost.exploration_usd == 0
    d = shadow.decision
    assert d is not None and d.router == SHADOW_ROUTER and d.explored
    assert d.propensity == pytest.approx(0.5) and d.target == shadow.final_tier != "cheap"
    assert d.scores == {"judge": 1.0} and served.request_id in d.reason
    assert shadow.route == "auto" and shadow.answer == "4"
    judged = shadow.attempts[-1].checks[-1]
    assert judged.name == "explore_judge" and judged.passed and judged.cost_usd > 0
    assert shadow.cost.checks_usd == judged.cost_usd
    assert shadow.cost.exploration_usd == shadow.cost.total_usd
    assert shadow.cost.total_usd == shadow.attempts[-1].cost_usd + judged.cost_usd
    sample = metrics.registry.get_sample_value
    exploration = sample("tierwise_exploration_cost_usd_total", {"route": "auto"})
    assert exploration == pytest.approx(float(shadow.cost.exploration_usd))


async def test_a_streamed_answer_is_shadowed_once_it_has_ended(upstream: FakeUpstream) -> None:
    explore = {"share": 1.0, "mode": "shadow", "judge": "judge", "max_spend_share": 1.0}
    seen: list[RequestRecord] = []
    cfg = config(upstream.base_url, explore)
    async with Gateway(cfg, rng=random.Random(2), sinks=[seen.append]) as gw:
        async with await gw.stream(ask()) as stream:
            text = "".join([d.text async for d in stream])
        assert text and upstream.count() == 1
        await gw.exploration.drain()
    shadows = [r for r in seen if r.decision and r.decision.router == SHADOW_ROUTER]
    assert len(shadows) == 1 and upstream.count("judge-model") == 1
    assert shadows[0].final_tier in ("mid", "strong") and shadows[0].cost.exploration_usd > 0


# --- the budget caps ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["random", "shadow"])
async def test_default_cap_keeps_exploration_within_five_percent(
    upstream: FakeUpstream, mode: str
) -> None:
    explore = {"share": 1.0, "mode": mode, "judge": "judge"}
    seen: list[RequestRecord] = []
    cfg = config(upstream.base_url, explore)
    async with Gateway(cfg, rng=random.Random(4), sinks=[seen.append]) as gw:
        await run(gw, 1000)
    total = sum((r.cost.total_usd for r in seen), Decimal(0))
    spent = sum((r.cost.exploration_usd for r in seen), Decimal(0))
    explored = sum(bool(r.decision and r.decision.explored) for r in seen)
    assert explored >= 2 and spent > 0
    assert spent <= total * Decimal("0.05")
    print(f"{mode}: exploration {spent / total:.4f} of the route's spend, {explored} explored")


async def test_daily_limit_stops_exploration_until_the_next_day(upstream: FakeUpstream) -> None:
    limit = Decimal("0.0005")
    explore = {"share": 1.0, "max_spend_share": 1.0, "budget_usd_per_day": str(limit)}
    async with Gateway(config(upstream.base_url, explore), rng=random.Random(8)) as gw:
        records = await run(gw, 40)
        budget = gw.exploration.budgets["auto"]
        assert not await budget.allowed(time.time())
        assert await budget.allowed(time.time() + 86_400)
    flags = [bool(r.decision and r.decision.explored) for r in records]
    stop = flags.index(False)
    assert stop >= 1 and not any(flags[stop:])
    spent = [r.cost.exploration_usd for r in records[:stop]]
    # it stopped within the limit, keeping room for the dearest explored request
    assert sum(spent, Decimal(0)) <= limit < sum(spent, Decimal(0)) + max(spent)
    assert all(r.decision and r.decision.propensity == 1.0 for r in records[stop:])


async def test_redis_cap_is_shared_between_replicas(
    upstream: FakeUpstream, redis_url: str, options: Any
) -> None:
    state = {"backend": "redis", "redis_url": redis_url, "namespace": options.namespace}
    explore = {"share": 1.0, "max_spend_share": 1.0, "budget_usd_per_day": "0.0005"}
    cfg = config(upstream.base_url, explore, state=state)
    async with Gateway(cfg, rng=random.Random(8)) as first:
        records = await run(first, 30)
    assert any(r.decision and r.decision.explored for r in records)
    assert not any(r.decision and r.decision.explored for r in records[-5:])
    spent = sum((r.cost.exploration_usd for r in records), Decimal(0))
    async with Gateway(cfg, rng=random.Random(9)) as second:
        budget = second.exploration.budgets["auto"]
        await budget.allowed(time.time())
        assert budget.spent == spent  # read from Redis, written by the other replica
        later = await run(second, 20)
        assert not await budget.allowed(time.time())
        assert await budget.allowed(time.time() + 86_400)
    # both replicas count against one limit; the second stops as the first did
    assert not any(r.decision and r.decision.explored for r in later[-5:])
    both = [r.cost.exploration_usd for r in [*records, *later]]
    assert sum(both, Decimal(0)) <= Decimal("0.0005") + max(both)


async def test_exploration_budget_counts_on_redis(redis_url: str, options: Any) -> None:
    from tierwise.state.redis import redis_client
    from tierwise.state.redis_budget import RedisBudget

    limits = {s: COUNTER_LIMIT for s in scopes("r")}
    client = redis_client(redis_url, timeout_s=5.0)
    shared = RedisBudget(client, limits, options)
    one, other = (
        ExplorationBudget("r", limit_usd=None, max_share=0.05, shared=shared, refresh_s=0.0)
        for _ in range(2)
    )
    now = 1_800_000_000.0
    assert not await one.allowed(now)  # nothing spent on the route yet today
    await one.charge(Decimal("1.00"), Decimal("0.01"), now)
    assert await other.allowed(now) and other.route_spent == Decimal("1.00")
    await other.charge(Decimal("0.10"), Decimal("0.05"), now)
    assert not await one.allowed(now)
    assert one.spent == Decimal("0.06") and one.route_spent == Decimal("1.10")
    assert not await one.allowed(now + 86_400)  # a new day, again waiting for a request
    await shared.aclose()
    await client.aclose()


async def test_budget_in_memory_counts_per_utc_day() -> None:
    budget = ExplorationBudget("r", limit_usd=Decimal("0.5"), max_share=1.0)
    now = 1_800_000_000.0
    assert await budget.allowed(now)
    budget.count(Decimal("0.3"), Decimal("0.3"), now)
    assert not await budget.allowed(now)  # 0.3 spent, and room kept for another 0.3
    assert await budget.allowed(now + 86_400) and budget.spent == 0


# --- the request log, the report and replay ---------------------------------------------


async def fetch_rows(url: str) -> list[dict[str, Any]]:
    statement = (
        "SELECT request_id, router, decision_target, decision_propensity, explored, "
        "exploration_cost_usd, cost_pusd FROM requests ORDER BY created_at"
    )
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute(statement)]
        conn.close()
        return rows
    import asyncpg

    parts = urlsplit(url)
    schema = parse_qs(parts.query)["schema"][0]
    pg = await asyncpg.connect(parts._replace(query="").geturl())
    try:
        await pg.execute(f'SET search_path TO "{schema}"')
        return [dict(r) for r in await pg.fetch(statement)]
    finally:
        await pg.close()


async def test_columns_are_written_on_sqlite_and_postgres(
    upstream: FakeUpstream, store_url: str
) -> None:
    writer = RecordWriter(open_store(store_url, Capture(prompts=True)))
    await writer.start()
    explore = {"share": 0.5, "max_spend_share": 1.0}
    cfg = config(upstream.base_url, explore, target="strong")
    async with Gateway(cfg, rng=random.Random(6), sinks=[writer.submit]) as gw:
        records = await run(gw, 40)
        direct = (await gw.chat(ChatRequest([Message("user", "hi")], model="mini"))).record
    assert await writer.flush()
    report = await summarize(writer.store, 0.0)
    await writer.close()
    rows = {r["request_id"]: r for r in await fetch_rows(store_url)}
    assert len(rows) == 41 and rows[direct.request_id]["decision_propensity"] is None
    for record in records:
        row, d = rows[record.request_id], record.decision
        assert d is not None
        assert row["decision_propensity"] == pytest.approx(d.propensity, rel=1e-6)
        assert row["explored"] == int(d.explored)
        assert row["exploration_cost_usd"] == round(record.cost.exploration_usd * 10**12)
    assert {r["explored"] for r in rows.values()} == {0, 1}
    spent = sum((r.cost.exploration_usd for r in records), Decimal(0))
    assert spent > 0 and report.money.exploration_usd == spent
    assert report.money.to_json()["exploration_cost_usd"] == f"{spent:f}"
    log = build_log(*await fetch(store_url, None), "log")
    assert log.weights is not None and len(log.weights) == len(log.table)
    # 1 / (0.5/3) for an explored cheap or mid start, 1 / (0.5/3 + 0.5) for strong,
    # and 1 for the request sent to a deployment directly (no propensity logged)
    assert set(np.round(log.weights, 6).tolist()) == {6.0, 1.5, 1.0}


# --- inverse propensity weighting makes replay unbiased ---------------------------------

CHEAP, STRONG = "cheap-model", "strong-model"


def synthetic_log(rng: random.Random, n: int, share: float) -> list[dict[str, Any]]:
    """Half short prompts, half long. The logging router sends long prompts to the
    strong model and short ones cheap, and explores with `share`. The cheap model
    answers every short prompt well and half the long ones: its true quality over
    the traffic is 0.75."""
    rows = []
    for i in range(n):
        long = rng.random() < 0.5
        routed = STRONG if long else CHEAP
        explored = rng.random() < share
        served = rng.choice([CHEAP, STRONG]) if explored else routed
        p = share / 2 + (1 - share) * (served == routed)
        good = served == STRONG or not long or rng.random() < 0.5
        rows.append(
            {
                "request_id": f"q{i}",
                "route": "auto",
                "final_model": served,
                "cost_pusd": 10**9 if served == CHEAP else 10**10,
                "prompt": f"{'analyze this long report ' * 3 if long else 'hi'} {i}",
                "variant": None,
                "router": "explore>heuristic" if explored else "heuristic",
                "decision_propensity": p,
                "score": float(good),
            }
        )
    return rows


def estimates(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """The replay quality of "always cheap" without and with the propensities."""
    feedback = {str(r["request_id"]): float(r["score"]) for r in rows}
    log = build_log(rows, feedback, len(rows), "synthetic")
    cheap = log.table.models.index(CHEAP)
    choice = np.full(len(log.table), cheap, dtype=np.intp)
    plain = replay_point("cheap", 0.0, choice, log.table, cheap).quality
    weighted = replay_point("cheap", 0.0, choice, log.table, cheap, log.weights).quality
    return plain, weighted


def test_inverse_propensity_replay_is_unbiased_where_plain_replay_is_not() -> None:
    rng = random.Random(2024)
    runs = np.array([estimates(synthetic_log(rng, 1000, 0.2)) for _ in range(40)])
    plain, weighted = runs.mean(axis=0)
    assert abs(weighted - 0.75) < 0.015, weighted
    assert plain > 0.9  # the matched cheap requests are mostly the short, easy ones
    spread = runs[:, 1].std() / np.sqrt(len(runs))
    assert abs(weighted - 0.75) < 4 * spread + 0.005


def test_replay_uses_the_logged_propensities_and_skips_shadow_calls() -> None:
    rows = synthetic_log(random.Random(3), 2000, 0.2)
    shadow = dict(rows[0], request_id="s0", router=SHADOW_ROUTER, final_model=STRONG)
    feedback = {str(r["request_id"]): float(r["score"]) for r in rows}
    log = build_log([*rows, shadow], feedback, len(rows) + 1, "synthetic")
    assert "s0" not in log.table.prompt_ids
    result = replay(log, "heuristic")
    always = {p.label: p for p in result.baselines}[f"always {CHEAP}"]
    assert always.quality == pytest.approx(0.75, abs=0.04)


def test_config_rejects_a_shadow_without_a_known_judge() -> None:
    base = "http://127.0.0.1:9"
    with pytest.raises(ConfigError, match="needs a judge"):
        config(base, {"share": 0.1, "mode": "shadow"})
    with pytest.raises(ConfigError, match=r"explore\.judge: unknown deployment or tier 'nope'"):
        config(base, {"share": 0.1, "mode": "shadow", "judge": "nope"})
    with pytest.raises(ConfigError, match="share"):
        config(base, {"share": 1.5})
    assert config(base, None).routes["auto"].explore is None
