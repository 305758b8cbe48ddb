"""Exploration on the gateway's routes (`routes.<name>.explore`).

`random`: the route's router is wrapped by `ExploreRouter`, which draws the start
tier uniformly for a share of requests and logs each decision's propensity.
`shadow`: the served answer is left alone; after the request's record is closed, a
background task asks another tier the same question, has the judge compare its
answer with the served one, and logs the shadow call as a record of its own
(router `explore:shadow`, explored, with its propensity and the verdict in its
scores), never returned to anyone. `random` with a `judge`: every explored answer
and a share (`judge_share`) of the others is graded by the judge in background tasks
(`tierwise.exploration_grade`); each judge call is logged as a record of its own
(router `explore:grade`, explored, with no prompt) and its verdict is handed to
`keep_verdict` as the served request's judgment, the label learning reads.
Explored requests, shadow calls (with their judge) and judge grades are billed on
the `exploration` line, and each route's exploration stops for the day once that
line reaches its budget or its share of the route's spend.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from tierwise.accounting import bill
from tierwise.config import GatewayConfig
from tierwise.config.routes import ExploreConfig
from tierwise.deployments import Deployment
from tierwise.executor import Answer, Executor, Outcome
from tierwise.experiments.judge import judge_prompt, parse_verdict
from tierwise.exploration_grade import (
    JUDGE_PROMPT_TOKENS,
    Grading,
    KeepVerdict,
    dearest,
    grade_decision,
    grade_estimate,
    judge_request,
    judgment,
    read_score,
)
from tierwise.pricing import Price
from tierwise.providers.base import Timeouts
from tierwise.record import ZERO, AttemptRecord, CheckResult, Decision, RequestRecord
from tierwise.routing.base import Router
from tierwise.routing.explore import (
    COUNTER_LIMIT,
    SHADOW_ROUTER,
    SIDE_ROUTERS,
    ExplorationBudget,
    ExploreRouter,
    pick_shadow,
    scopes,
    shadow_propensity,
)
from tierwise.state.budget import Budget, BudgetLimit
from tierwise.store.tables import JudgmentRow
from tierwise.targets import Target, Targets
from tierwise.types import ChatRequest, ChatResponse, Usage

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tierwise.exploration")
JUDGE_CHECK = "explore_judge"
Emit = Callable[[RequestRecord], None]


@dataclass(frozen=True, slots=True)
class _Shadow:
    target: Target
    request: ChatRequest
    served: RequestRecord
    tier: str
    propensity: float
    judge: str
    estimate: Decimal


class Exploration:
    """The exploring routes of one gateway: their routers, budgets, shadow calls and
    judge grades. `observe` is a record sink; `after` is called with each closed
    record. `keep_verdict` keeps a grade's verdict (None: answers are not graded);
    `skipped` counts shadow calls and grades left out for want of a free slot."""

    def __init__(
        self,
        config: GatewayConfig,
        executor: Executor,
        targets: Targets,
        emit: Emit,
        *,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        concurrency: int = 8,
    ) -> None:
        self.executor, self.targets, self.emit = executor, targets, emit
        self.rng, self.wall, self.concurrency = rng or random.Random(), wall, concurrency
        self.configs: dict[str, ExploreConfig] = {
            name: route.explore
            for name, route in config.routes.items()
            if route.explore is not None and route.explore.share > 0
        }
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.budgets = self._budgets(config)
        self._routers: dict[tuple[str, int], ExploreRouter] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.shadows = 0
        self.grading = 0
        self.skipped = 0
        self.keep_verdict: KeepVerdict | None = None

    def __bool__(self) -> bool:
        return bool(self.configs)

    def _budgets(self, config: GatewayConfig) -> dict[str, ExplorationBudget]:
        """Per exploring route; counted in this process, and in Redis too when the
        state backend is Redis."""
        limits = {scope: COUNTER_LIMIT for name in self.configs for scope in scopes(name)}
        shared = self._shared(config, limits) if self.configs else None
        return {
            name: ExplorationBudget(
                name, limit_usd=c.budget_usd_per_day, max_share=c.max_spend_share, shared=shared
            )
            for name, c in self.configs.items()
        }

    def _shared(self, config: GatewayConfig, limits: dict[str, BudgetLimit]) -> Budget | None:
        if config.state.backend == "memory":
            return None
        from tierwise.state.redis import RedisOptions, redis_client
        from tierwise.state.redis_budget import RedisBudget

        client: Redis = redis_client(config.state.redis_url)
        options = RedisOptions(namespace=config.state.namespace, on_unavailable="open")
        budget = RedisBudget(client, limits, options)
        self._closers += [budget.aclose, client.aclose]
        return budget

    def router_for(self, target: Target) -> Router | None:
        """The target's router, wrapped when its route explores at random."""
        config = self.configs.get(target.name)
        if target.router is None or config is None or config.mode != "random":
            return target.router
        key = (target.name, id(target.router))
        wrapped = self._routers.get(key)
        if wrapped is None:
            budget = self.budgets[target.name]
            wrapped = ExploreRouter(target.router, config.share, self.rng, budget, self.wall)
            self._routers[key] = wrapped
        return wrapped

    def observe(self, record: RequestRecord) -> None:
        """Count a finished request of an exploring route toward its caps."""
        budget = self.budgets.get(record.route)
        if budget is None:
            return
        cost = record.cost
        if budget.shared is None:
            budget.count(cost.total_usd, cost.exploration_usd, self.wall())
        else:
            self._spawn(budget.charge(cost.total_usd, cost.exploration_usd, self.wall()))

    def after(self, record: RequestRecord, request: ChatRequest, target: Target) -> None:
        """Maybe start a shadow call or a grade for this closed request (never awaited
        here)."""
        config = self.configs.get(record.route)
        if config is None or config.judge is None:
            return
        if record.status != "ok" or not record.answer or record.final_tier is None:
            return
        if record.decision is None or record.decision.router in SIDE_ROUTERS:
            return
        if config.mode == "random":
            self._maybe_grade(record, request, target, config, config.judge)
        else:
            self._maybe_shadow(record, request, target, config, config.judge)

    def _maybe_shadow(
        self,
        record: RequestRecord,
        request: ChatRequest,
        target: Target,
        config: ExploreConfig,
        judge: str,
    ) -> None:
        served = record.final_tier
        if served is None or self.rng.random() >= config.share:
            return
        tiers = [s.tier for s in target.steps]
        tier = pick_shadow(self.rng, tiers, served)
        if tier is None:
            return
        if self.shadows >= self.concurrency:
            self.skipped += 1
            return
        p = shadow_propensity(config.share, tiers, served)
        estimate = self._estimate(record, target, tier, judge)
        self.shadows += 1
        self._spawn(self._shadow(_Shadow(target, request, record, tier, p, judge, estimate)))

    def _maybe_grade(
        self,
        record: RequestRecord,
        request: ChatRequest,
        target: Target,
        config: ExploreConfig,
        judge: str,
    ) -> None:
        """Grade every explored request and `judge_share` of the others, outside
        experiments (whose judgments are the experiment judge's), while
        `keep_verdict` is set: an explored answer nobody grades teaches nothing."""
        if self.keep_verdict is None or record.experiment is not None:
            return
        explored = record.decision is not None and record.decision.explored
        share = 1.0 if explored else config.judge_share
        if share < 1.0 and self.rng.random() >= share:
            return
        if self.grading >= self.concurrency:
            self.skipped += 1
            return
        estimate = grade_estimate(record, self.targets.get(judge))
        self.grading += 1
        grading = Grading(target, request, record, judge, estimate, share)
        self._spawn(self._grade(grading, self.keep_verdict))

    def _estimate(self, record: RequestRecord, target: Target, tier: str, judge: str) -> Decimal:
        """What a shadow call and its judge should cost: the served call's tokens on
        the shadow tier's dearest deployment, and the judge's prompt (the question
        and both answers) on the judge's."""
        usage = next((a.usage for a in reversed(record.attempts) if a.usage), None)
        if usage is None:
            return ZERO
        same = Usage(usage.input_tokens, usage.output_tokens)
        judged = Usage(usage.input_tokens + 2 * usage.output_tokens + JUDGE_PROMPT_TOKENS, 8)
        shadow_step = next(s for s in target.steps if s.tier == tier)
        judge_step = self.targets.get(judge).steps[0]
        return dearest(shadow_step, same) + dearest(judge_step, judged)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _guarded(work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:
            log.exception("exploration task failed")

    async def _shadow(self, shadow: _Shadow) -> None:
        try:
            budget = self.budgets[shadow.target.name]
            if await budget.allowed(self.wall(), shadow.estimate):
                await self._shadow_call(shadow)
        finally:
            self.shadows -= 1

    async def _shadow_call(self, shadow: _Shadow) -> None:
        """Ask the shadow tier, judge its answer, and log the call as its own record."""
        served = shadow.served
        record = _side_record(served, shadow.target.name, served.prompt)
        plan = shadow.target.plan_from(f"{shadow.tier}>")
        outcome = await self.executor.run(
            shadow.request, plan, shadow.target.policy, _complete, record.attempts
        )
        scores: dict[str, float] = {}
        reason = f"shadow of {served.request_id}"
        verdict: JudgmentRow | None = None
        if outcome.answer is not None:
            record.answer = outcome.answer.view.text()
            score, detail, cost = await self._judge(shadow, record)
            reason += f"; judge {shadow.judge}: {detail}"
            if score is not None:
                scores["judge"] = score
                about = f"shadow of {served.request_id}: {detail}"
                verdict = judgment(record.request_id, shadow.judge, score, cost, about)
        decision = Decision(
            shadow.tier,
            scores,
            reason[:500],
            SHADOW_ROUTER,
            propensity=shadow.propensity,
            explored=True,
        )
        _close(record, outcome)
        record.decision = decision
        baseline = shadow.target.baseline.price if shadow.target.baseline else None
        self._bill(record, decision, baseline)
        self.emit(record)
        if verdict is not None and self.keep_verdict is not None:
            await self.keep_verdict(verdict)

    async def _judge(
        self, shadow: _Shadow, record: RequestRecord
    ) -> tuple[float | None, str, Decimal]:
        """The judge's verdict on the shadow answer (A) against the served one (B),
        billed as a check on the shadow call."""
        judge = self.targets.get(shadow.judge)
        question = shadow.served.prompt or shadow.request.last_user_text()
        messages = judge_prompt(question, record.answer or "", shadow.served.answer or "")
        attempts: list[AttemptRecord] = []
        request = ChatRequest(messages, model=shadow.judge)
        plan = judge.plan_from("")
        outcome = await self.executor.run(request, plan, judge.policy, _complete, attempts)
        cost = sum((a.cost_usd + a.check_cost_usd for a in attempts), ZERO)
        if outcome.answer is None:
            score, detail = None, f"judge failed: {outcome.error}"
        else:
            verdict = parse_verdict(outcome.answer.view.text())
            score, detail = verdict.score, verdict.detail
        last = next((a for a in reversed(record.attempts) if a.called), None)
        if last is not None:
            last.checks.append(CheckResult(JUDGE_CHECK, score == 1.0, detail, cost))
        return score, detail, cost

    async def _grade(self, grading: Grading, keep: KeepVerdict) -> None:
        try:
            budget = self.budgets[grading.target.name]
            if await budget.allowed(self.wall(), grading.estimate, known=True):
                await self._grade_call(grading, keep)
        finally:
            self.grading -= 1

    async def _grade_call(self, grading: Grading, keep: KeepVerdict) -> None:
        """Ask the judge about the served answer, log the call as its own record
        (no prompt: never an outcome row) and keep the verdict when there is one."""
        served = grading.served
        record = _side_record(served, grading.target.name)
        judge = self.targets.get(grading.judge)
        outcome = await self.executor.run(
            judge_request(grading), judge.plan_from(""), judge.policy, _complete, record.attempts
        )
        score, detail = None, f"judge failed: {outcome.error}"
        if outcome.answer is not None:
            record.answer = outcome.answer.view.text()
            score, detail = read_score(outcome.answer.value)
        _close(record, outcome)
        record.decision = grade_decision(grading, score, detail)
        self._bill(record, record.decision, None)
        self.emit(record)
        if score is None:
            return
        about = f"explore grade: {detail}"
        row = judgment(served.request_id, grading.judge, score, record.cost.total_usd, about)
        try:
            await keep(row)
        except Exception:
            log.exception("explore grade of request %s not kept", served.request_id)

    @staticmethod
    def _bill(record: RequestRecord, decision: Decision, baseline: Price | None) -> None:
        """Close the bill of an exploration call; a judge grade has no baseline (no
        request would have made it)."""
        record.latency_ms = (time.time() - record.started_at) * 1000
        final = next((a.usage for a in reversed(record.attempts) if a.usage), None)
        record.cost = bill(record.attempts, decision, baseline, final)

    async def drain(self) -> None:
        """Wait for the shadow calls, grades and charges started so far."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the shadow calls, grades and charges still running, then
        disconnect."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for close in self._closers:
            await close()


def _close(record: RequestRecord, outcome: Outcome[ChatResponse]) -> None:
    if outcome.deployment is not None:
        record.final_deployment = outcome.deployment.name
        record.final_tier = outcome.deployment.tier
    answered = outcome.answer is not None
    record.status = "error" if not answered else ("degraded" if outcome.degraded else "ok")
    record.error = None if record.status == "ok" else outcome.error


async def _complete(
    deployment: Deployment, request: ChatRequest, timeouts: Timeouts
) -> Answer[ChatResponse]:
    response = await deployment.provider.complete(request, timeouts)
    return Answer(response, response)


def _side_record(served: RequestRecord, route: str, prompt: str | None = None) -> RequestRecord:
    """The record of a call made beside `served` (a shadow or a grade), logged under
    `route` for the same user, team and key (with `prompt`: an outcome row's text)."""
    return RequestRecord(
        uuid.uuid4().hex,
        route,
        started_at=time.time(),
        user=served.user,
        team=served.team,
        api_key=served.api_key,
        prompt=prompt,
    )
