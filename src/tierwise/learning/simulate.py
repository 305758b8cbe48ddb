"""`tierwise simulate`: the learning loop run end to end on an outcome table, so that
anyone can rerun it and check the router it ends with on other prompts.

The table's prompts are split by text into a traffic pool and held-out test prompts
(`test_share`, written as `test.csv`). A real gateway (`sim_world`) starts on the
default router with random exploration and a judge that grades served answers by
reading the recorded scores; `requests` prompts drawn from the pool (with
replacement when there are more requests than prompts) go through it with the
openai SDK. Every `every` requests the learn step runs on the request log as the
`learn` block runs it (`learning.serve.learn_route`, mode apply: a candidate is
served only when it beats the route's router on held-out logged requests), and the
newest candidate is measured on the test prompts at its own operating point (chosen
on its training data): its cost and quality as shares of the strong model's.
The reference is the same router (`loop.plan_for`) trained offline on the whole pool
with every model's score, measured the same way.

Written to `out`: `learning_curve.csv`, `learning_curve.png`, `router.npz` (the last
candidate), `offline_router.npz`, `start_router.yaml` (the starting router, measured
the same way), `test.csv`, `summary.json` and the gateway's
SQLite request log `simulation.db`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.learning import loop
from tierwise.learning.sim_report import Point, Result, write_curve, write_plot
from tierwise.learning.sim_world import (
    JUDGE,
    ROUTE,
    RecordedJudge,
    World,
    gateway_data,
    script_answers,
    world_of,
    write_rows,
)

YEAR_S = 365 * 86_400.0


@dataclass(frozen=True, slots=True)
class Spec:
    outcomes: Path
    answers: Path
    out: Path
    requests: int = 3000
    explore: float = 0.1
    every: int = 250
    models: tuple[str, ...] = ()
    test_share: float = 0.2
    quality_target: float = 0.95
    judge_share: float = 0.1
    max_spend_share: float = 0.05
    router: str = "pretrained"
    embedder: str = "hashing"
    min_labelled: int = 200
    seed: int = 0


@dataclass(slots=True)
class Tally:
    """The route's spend and its exploration line, from every closed record."""

    route_usd: Decimal = Decimal(0)
    exploration_usd: Decimal = Decimal(0)

    def __call__(self, record: Any) -> None:
        if record.route == ROUTE:
            self.route_usd += record.cost.total_usd
            self.exploration_usd += record.cost.exploration_usd

    @property
    def exploration_share(self) -> float:
        return float(self.exploration_usd / self.route_usd) if self.route_usd else 0.0


def measure(test: Any, router_file: Path, strong: str) -> tuple[float, float]:
    """(cost share, quality share) of the strong model's on `test`, at the router
    file's own operating point."""
    from tierwise.evaluation.saved import evaluate_saved

    result = evaluate_saved(test, str(router_file), strong, None, 0.0)
    point, base = result.points[0], result.baselines[result.models.index(strong)]
    return point.cost / base.cost, point.quality / base.quality


def offline_reference(
    pool: Any, test: Any, strong: str, spec: Spec, path: Path
) -> dict[str, float]:
    """The same router trained on the whole pool with every score, measured on `test`."""
    from tierwise.learning.command import run
    from tierwise.learning.store import save_router

    settings = loop.Settings((), quality_target=spec.quality_target, embedder=spec.embedder)
    training = loop.merged(pool)
    router, _, _ = run(training, loop.plan_for(settings, len(training)))
    save_router(router, path)
    cost, quality = measure(test, path, strong)
    return {"cost_share": cost, "quality_share": quality, "prompts": float(len(training))}


def starting_point(test: Any, spec: Spec, tiers: list[str], strong: str) -> dict[str, float]:
    """The route's starting router (`spec.router` over `tiers`, cheapest first),
    measured on `test` like the candidates; empty when it cannot decide offline (a
    router that calls a model, say)."""
    import yaml

    from tierwise.errors import TierwiseError

    path = spec.out / "start_router.yaml"
    path.write_text(yaml.safe_dump({"router": {"kind": spec.router}, "tiers": tiers}))
    try:
        cost, quality = measure(test, path, strong)
    except (TierwiseError, ValueError):
        return {}
    return {"cost_share": cost, "quality_share": quality}


async def simulate(spec: Spec) -> Result:
    from tierwise.evaluation.answers import read_answers
    from tierwise.evaluation.runner import pick_models
    from tierwise.learning.prepare import load_table

    table = load_table(spec.outcomes)
    if spec.models:
        table = table.with_models(list(spec.models))
    answers = read_answers(spec.answers, table.prompt_ids, table.models)
    pool_rows, test_rows = loop.split_rows(table.texts, spec.test_share, spec.seed)
    test, pool = table.subset(test_rows), table.subset(pool_rows)
    strong = table.models[pick_models(table, None, None)[0]]
    spec.out.mkdir(parents=True, exist_ok=True)
    write_rows(spec.outcomes, set(test.prompt_ids), table.models, spec.out / "test.csv")
    offline = await asyncio.to_thread(
        offline_reference, pool, test, strong, spec, spec.out / "offline_router.npz"
    )
    result = Result(asdict(spec), len(pool), len(test), strong, offline)
    world = world_of(table)
    result.start = await asyncio.to_thread(starting_point, test, spec, world.models, strong)
    judge = RecordedJudge(table, answers, pool_rows.tolist())
    await _run(spec, table, answers, world, judge, pool_rows.tolist(), test, result)
    result.judge = {"asked": judge.asked, "unknown": judge.unknown}
    write_outputs(result, spec.out)
    return result


async def _run(
    spec: Spec,
    table: Any,
    answers: Any,
    world: World,
    judge: RecordedJudge,
    pool_rows: list[int],
    test: Any,
    result: Result,
) -> None:
    from tierwise.config import parse_config
    from tierwise.server.app import GATEWAY
    from tierwise.server.run import running
    from tierwise.testing import FakeUpstream

    database = spec.out / "simulation.db"
    database.unlink(missing_ok=True)
    async with FakeUpstream(models=[*world.models, JUDGE]) as fake:
        script_answers(fake, world, table, answers, pool_rows)
        fake.respond(JUDGE, judge)
        explore = {
            "share": spec.explore,
            "judge_share": spec.judge_share,
            "max_spend_share": spec.max_spend_share,
        }
        data = gateway_data(
            world,
            fake.base_url,
            f"sqlite:///{database}",
            router=spec.router,
            explore=explore,
            baseline=result.strong,
        )
        async with running(parse_config(data), rng=random.Random(spec.seed)) as live:
            tally = Tally()
            live.app[GATEWAY].sinks.append(tally)
            draws = _draws(pool_rows, spec)
            texts = [table.texts[i] for i in draws]
            await _traffic(live, texts, spec, test, result, tally)
        fake.clear()


def _draws(pool_rows: list[int], spec: Spec) -> list[int]:
    rng = np.random.default_rng(spec.seed)
    many = spec.requests > len(pool_rows)
    return [int(i) for i in rng.choice(pool_rows, size=spec.requests, replace=many)]


async def _traffic(
    live: Any, texts: list[str], spec: Spec, test: Any, result: Result, tally: Tally
) -> None:
    import openai

    from tierwise.server.app import GATEWAY

    url = live.base_url + "/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
        for start in range(0, len(texts), spec.every):
            batch = texts[start : start + spec.every]
            await _send(client, batch, live.app[GATEWAY].exploration.drain)
            await _settle(live)
            sent = start + len(batch)
            result.curve.append(await _checkpoint(live, sent, spec, test, result.strong, tally))


async def _send(client: Any, texts: list[str], drain: Callable[[], Awaitable[None]]) -> None:
    """One request at a time, each one's judge call finished (`drain`) before the
    next: the gateway's seeded random draws then come in one order, run after run."""
    for text in texts:
        await client.chat.completions.create(
            model=ROUTE, messages=[{"role": "user", "content": text}], temperature=0
        )
        await drain()


async def _settle(live: Any) -> None:
    """Wait for the judge calls, then for every record to reach the store."""
    from tierwise.server.app import GATEWAY, WRITER
    from tierwise.store.guard import StoreUnavailableError

    await live.app[GATEWAY].exploration.drain()
    if not await live.app[WRITER].flush():
        raise StoreUnavailableError("the simulation's request log")


async def _checkpoint(
    live: Any, sent: int, spec: Spec, test: Any, strong: str, tally: Tally
) -> Point:
    """Run the learn step (apply mode), serve its winner, measure its candidate (kept
    as `router.npz`)."""
    from tierwise.learning.serve import LearnOptions, learn_route
    from tierwise.server.admin import MONITOR
    from tierwise.server.app import GATEWAY

    monitor = live.app[MONITOR]
    options = LearnOptions(
        YEAR_S, spec.min_labelled, spec.quality_target, spec.embedder, seed=spec.seed
    )
    found: list[loop.Candidate] = []
    outcome = await learn_route(
        live.app[GATEWAY].config,
        monitor.store,
        ROUTE,
        time.time(),
        options,
        "apply",
        "simulate",
        found.append,
    )
    await monitor.tick()
    cost = quality = None
    if found:
        router_file = spec.out / "router.npz"
        router_file.write_bytes(found[-1].body)
        cost, quality = await asyncio.to_thread(measure, test, router_file, strong)
    serving = monitor.learned.serving.get(ROUTE) or "the configured router"
    labelled, status = int(outcome["labelled"]), outcome["status"]
    money = float(tally.route_usd), float(tally.exploration_usd), tally.exploration_share
    return Point(sent, labelled, status, cost, quality, serving, *money)


def write_outputs(result: Result, out: Path) -> None:
    write_curve(result.curve, out / "learning_curve.csv")
    write_plot(result, out / "learning_curve.png")
    summary = json.dumps(asdict(result), indent=2, default=str)
    (out / "summary.json").write_text(summary + "\n")
