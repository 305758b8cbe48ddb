"""Runs a plan of attempts; the one place that decides "next attempt?".

Every trigger, an error kind, a failed quality check or low confidence, maps
through the route's `FallbackConfig` to an action (retry the deployment, try
the next one, escalate to the next tier, or fail) and a cooldown scope (this
request only, count toward the deployment's breaker, or open it at once).
One attempt budget and one deadline bound the whole request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from tierwise.capabilities import describe_needs, request_needs
from tierwise.checks.base import AnswerView
from tierwise.checks.builtin import EmptyCheck
from tierwise.config import LOW_CONFIDENCE, QUALITY_CHECK, Action, Cooldown
from tierwise.deployments import Deployment, Policy, Step
from tierwise.errors import CAPABILITY, ErrorKind, ProviderError
from tierwise.providers.base import Timeouts
from tierwise.record import ZERO, AttemptRecord, CheckResult
from tierwise.resilience.backoff import retry_delay_s
from tierwise.resilience.balancing import Candidate, order_candidates
from tierwise.state.base import HealthState
from tierwise.state.budget import Budget, Reservation
from tierwise.types import ChatRequest, ChatResponse, Usage

T = TypeVar("T")
CIRCUIT_OPEN = "circuit_open"
BUDGET = "budget"
STATE_UNAVAILABLE = "state_unavailable"
BLANK = EmptyCheck()


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(slots=True)
class Answer(Generic[T]):
    """What one call produced: `view` is what checks judge (a prefix when
    `complete` is False); `discard` releases a value that will not be used;
    an answer that is not text (embeddings) is not `judged`: only its usage counts."""

    value: T
    view: ChatResponse
    complete: bool = True
    first_token_ms: float | None = None
    discard: Callable[[], Awaitable[None]] | None = None
    judged: bool = True


Call = Callable[[Deployment, ChatRequest, Timeouts], Awaitable[Answer[T]]]


@dataclass(slots=True)
class Outcome(Generic[T]):
    """The accepted answer (None when every attempt failed), the deployment that
    gave it, whether it only passed by exhausting the plan, and every attempt."""

    answer: Answer[T] | None
    deployment: Deployment | None
    attempts: list[AttemptRecord]
    degraded: bool = False
    error: str = ""
    reservation: Reservation | None = None


@dataclass(slots=True)
class _Run(Generic[T]):
    request: ChatRequest
    call: Call[T]
    deadline: float
    attempts: list[AttemptRecord] = field(default_factory=list)
    calls: int = 0
    fallback_answer: tuple[Answer[T], Deployment] | None = None
    cooling: list[Deployment] = field(default_factory=list)
    stop: str = ""
    scopes: tuple[str, ...] = ()
    left: int = 0
    open_reservation: Reservation | None = None
    needs: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Result(Generic[T]):
    action: Action | None
    answer: Answer[T] | None = None
    retry_after_s: float | None = None


class Executor:
    """Runs a plan for one request under a route's `Policy`."""

    def __init__(
        self,
        health: HealthState,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.health = health
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.budget = budget

    async def run(
        self,
        request: ChatRequest,
        plan: list[Step],
        policy: Policy,
        call: Call[T],
        attempts: list[AttemptRecord] | None = None,
        scopes: Sequence[str] = (),
    ) -> Outcome[T]:
        """Run `plan`; each attempt is appended to `attempts` as it ends, so a
        caller still holds them when the run is cancelled. With a budget, each
        call first reserves its worst case in `scopes` and `model:<deployment>`."""
        deadline = self.clock.now() + policy.fallback.deadline_s
        run = _Run(request, call, deadline, attempts if attempts is not None else [])
        run.scopes = tuple(scopes)
        run.needs = request_needs(request)
        run.left = sum(len(step.deployments) for step in plan)
        for step in plan:
            found = await self._run_tier(run, step, policy)
            if found is not None:
                return await self._done(run, *found)
            if run.stop:
                break
        if not run.stop and run.cooling:
            found = await self._wait_for_cooldown(run, policy)
            if found is not None:
                return await self._done(run, *found)
        return await self._exhausted(run, policy)

    async def _done(self, run: _Run[T], answer: Answer[T], deployment: Deployment) -> Outcome[T]:
        await _discard(run.fallback_answer)
        return Outcome(answer, deployment, run.attempts, reservation=run.open_reservation)

    async def _exhausted(self, run: _Run[T], policy: Policy) -> Outcome[T]:
        error = run.stop or "every option was tried"
        if run.fallback_answer is not None and policy.return_last_on_checks:
            answer, deployment = run.fallback_answer
            return Outcome(answer, deployment, run.attempts, degraded=True, error=error)
        await _discard(run.fallback_answer)
        return Outcome(None, None, run.attempts, error=error)

    async def _run_tier(
        self, run: _Run[T], step: Step, policy: Policy
    ) -> tuple[Answer[T], Deployment] | None:
        for deployment in await self._order(step, policy):
            run.left -= 1
            result = await self._run_deployment(run, deployment, policy)
            if result.answer is not None:
                return result.answer, deployment
            if run.stop or result.action is Action.ESCALATE:
                return None
        return None

    async def _order(self, step: Step, policy: Policy) -> list[Deployment]:
        if len(step.deployments) == 1:
            return list(step.deployments)
        now = self.clock.now()
        by_name = {d.name: d for d in step.deployments}
        candidates = []
        for d in step.deployments:
            health = await self.health.health(d.name, now)
            candidates.append(Candidate(d.name, d.weight, health.latency_ms, health.in_flight))
        names = order_candidates(candidates, policy.fallback.balancing, self.rng)
        return [by_name[n] for n in names]

    async def _run_deployment(
        self, run: _Run[T], deployment: Deployment, policy: Policy
    ) -> _Result[T]:
        unfit = _unfit(run, deployment)
        if unfit is not None:
            run.attempts.append(unfit)
            return _Result(Action.NEXT)
        retries = policy.fallback.retries_per_deployment
        for retry in range(retries + 1):
            if not self._budget_left(run, policy):
                return _Result(None)
            reservation = await self._reserve(run, deployment)
            if reservation is False:
                run.attempts.append(self._refused(deployment))
                return _Result(Action.NEXT)
            if not await self.health.acquire(deployment.name, self.clock.now()):
                await self._settle(reservation, None)
                if retry == 0:
                    run.attempts.append(await self._circuit_open(deployment))
                return _Result(Action.NEXT)
            try:
                result = await self._attempt(run, deployment, policy)
            except BaseException:
                await self._settle(reservation, run.attempts[-1] if run.attempts else None)
                raise
            streaming = result.answer is not None and not result.answer.complete
            if streaming and isinstance(reservation, Reservation):
                run.open_reservation = reservation
            else:
                await self._settle(reservation, run.attempts[-1] if run.attempts else None)
            if result.action is not Action.RETRY or retry == retries:
                return result
            if not await self._backoff(run, policy, retry, result.retry_after_s):
                return result
        return _Result(Action.NEXT)

    def _refused(self, deployment: Deployment) -> AttemptRecord:
        """A budget's refusal: spent, or its shared store unreachable (fail-closed;
        with the wait until the store is tried again, at least a second)."""
        if self.budget is not None and self.budget.unavailable():
            skipped = _skipped(deployment, STATE_UNAVAILABLE, "budget store unreachable")
            skipped.retry_after_s = max(self.budget.retry_in_s(), 1.0)
            return skipped
        return _skipped(deployment, BUDGET, "budget exhausted")

    async def _circuit_open(self, deployment: Deployment) -> AttemptRecord:
        """A skip for a breaker that was open before this request reached it, with
        the wait until it half-opens; the request does not wait for it."""
        now = self.clock.now()
        reopens_at = (await self.health.health(deployment.name, now)).reopens_at
        skipped = _skipped(deployment, CIRCUIT_OPEN, "circuit open")
        skipped.retry_after_s = max(reopens_at - now, 0.0)
        return skipped

    async def _reserve(self, run: _Run[T], deployment: Deployment) -> Reservation | bool | None:
        """The call's reservation; None without a budget; False when refused."""
        if self.budget is None:
            return None
        amount = deployment.worst_case_usd(run.request)
        scopes = [*run.scopes, f"model:{deployment.name}"]
        reservation = await self.budget.reserve(scopes, amount, self.clock.now())
        return False if reservation is None else reservation

    async def _settle(
        self, reservation: Reservation | bool | None, attempt: AttemptRecord | None
    ) -> None:
        if self.budget is None or not isinstance(reservation, Reservation):
            return
        if attempt is None or not attempt.called:
            await self.budget.release(reservation)
            return
        actual = attempt.cost_usd + attempt.check_cost_usd
        await self.budget.settle(reservation, actual, self.clock.now())

    async def settle_later(self, reservation: Reservation | None, attempt: AttemptRecord) -> None:
        """Settle the reservation of a stream that committed, once its cost is known."""
        if reservation is not None:
            await self._settle(reservation, attempt)

    def _budget_left(self, run: _Run[T], policy: Policy) -> bool:
        if run.calls >= policy.fallback.max_attempts:
            run.stop = f"attempt budget of {policy.fallback.max_attempts} used"
        elif self.clock.now() >= run.deadline:
            run.stop = f"deadline of {policy.fallback.deadline_s}s passed"
        return not run.stop

    async def _backoff(
        self, run: _Run[T], policy: Policy, retry: int, retry_after_s: float | None
    ) -> bool:
        delay = retry_delay_s(policy.fallback.backoff, retry, retry_after_s, self.rng)
        if delay is None or self.clock.now() + delay >= run.deadline:
            return False
        await self.clock.sleep(delay)
        return True

    async def _attempt(self, run: _Run[T], deployment: Deployment, policy: Policy) -> _Result[T]:
        run.calls += 1
        started = self.clock.now()
        timeouts = deployment.timeouts.within(run.deadline - started)
        if run.left > 0 and run.calls < policy.fallback.max_attempts:
            timeouts = timeouts.committing_within(policy.fallback.attempt_timeout_s)
        try:
            answer = await run.call(deployment, run.request, timeouts)
        except ProviderError as exc:
            return await self._failed(run, deployment, policy, exc, started)
        except BaseException:
            latency_ms = await self._release(deployment, started, ok=False, cooldown=Cooldown.NONE)
            run.attempts.append(
                deployment.attempt(
                    outcome="cancelled",
                    trigger="cancelled",
                    detail="the caller went away",
                    latency_ms=latency_ms,
                )
            )
            raise
        return await self._judge(run, deployment, policy, answer, started)

    async def _failed(
        self,
        run: _Run[T],
        deployment: Deployment,
        policy: Policy,
        exc: ProviderError,
        started: float,
    ) -> _Result[T]:
        rule = policy.fallback.policy(exc.kind.value)
        cooldown_s = rule.cooldown_s if rule.cooldown_s is not None else exc.retry_after_s
        latency_ms = await self._release(
            deployment, started, ok=False, cooldown=rule.cooldown, cooldown_s=cooldown_s
        )
        run.attempts.append(
            deployment.attempt(
                outcome="error",
                trigger=exc.kind.value,
                detail=exc.message,
                status=exc.status,
                latency_ms=latency_ms,
                retry_after_s=exc.retry_after_s,
            )
        )
        if rule.action is Action.FAIL:
            run.stop = f"{exc.kind.value} is not retried"
        if rule.cooldown is Cooldown.IMMEDIATE:
            run.cooling.append(deployment)
        return _Result(rule.action, retry_after_s=exc.retry_after_s)

    async def _judge(
        self,
        run: _Run[T],
        deployment: Deployment,
        policy: Policy,
        answer: Answer[T],
        started: float,
    ) -> _Result[T]:
        checks, confidence = await self._checks(run, deployment, policy, answer)
        failed = [c for c in checks if not c.passed]
        trigger, detail = None, ""
        if failed:
            trigger, detail = QUALITY_CHECK, "; ".join(f"{c.name}: {c.reason}" for c in failed)
        elif confidence is not None and confidence < policy.confidence_threshold:
            trigger = LOW_CONFIDENCE
            detail = f"confidence {confidence:.3f} < {policy.confidence_threshold}"
        rule = policy.fallback.policy(trigger) if trigger else None
        latency_ms = await self._release(
            deployment,
            started,
            ok=rule is None,
            cooldown=rule.cooldown if rule else Cooldown.NONE,
            cooldown_s=rule.cooldown_s if rule else None,
        )
        record = self._answer_record(run, deployment, answer, latency_ms, trigger, detail)
        record.checks, record.confidence = checks, confidence
        run.attempts.append(record)
        if rule is None:
            return _Result(None, answer)
        await self._keep_as_fallback(run, answer, deployment)
        if rule.action is Action.FAIL:
            run.stop = f"{trigger} is not retried"
        return _Result(rule.action)

    async def _checks(
        self, run: _Run[T], deployment: Deployment, policy: Policy, answer: Answer[T]
    ) -> tuple[list[CheckResult], float | None]:
        """The route's checks and the blank check, and the confidence, of a judged answer."""
        if not answer.judged:
            return [], None
        view = AnswerView(run.request, answer.view, answer.complete, deployment.name)
        checks = [await check.evaluate(view) for check in policy.checks]
        blank = await BLANK.evaluate(view)
        if not blank.passed and all(c.name != BLANK.name for c in checks):
            checks.insert(0, blank)
        confidence = policy.confidence.confidence(view) if policy.confidence else None
        return checks, confidence

    def _answer_record(
        self,
        run: _Run[T],
        deployment: Deployment,
        answer: Answer[T],
        latency_ms: float,
        trigger: str | None,
        detail: str,
    ) -> AttemptRecord:
        usage: Usage | None = None
        cost = ZERO
        if answer.complete or trigger is not None:
            usage, cost = deployment.cost_usd(run.request, answer.view)
        return deployment.attempt(
            outcome="ok" if trigger is None else "rejected",
            trigger=trigger,
            detail=detail,
            latency_ms=latency_ms,
            first_token_ms=answer.first_token_ms,
            usage=usage,
            cost_usd=cost,
        )

    async def _keep_as_fallback(
        self, run: _Run[T], answer: Answer[T], deployment: Deployment
    ) -> None:
        previous = run.fallback_answer
        run.fallback_answer = (answer, deployment)
        await _discard(previous)

    async def _release(
        self,
        deployment: Deployment,
        started: float,
        *,
        ok: bool,
        cooldown: Cooldown,
        cooldown_s: float | None = None,
    ) -> float:
        now = self.clock.now()
        latency_ms = (now - started) * 1000
        await self.health.release(
            deployment.name,
            now,
            ok=ok,
            latency_ms=latency_ms,
            cooldown=cooldown,
            cooldown_s=cooldown_s,
        )
        return latency_ms

    async def _wait_for_cooldown(
        self, run: _Run[T], policy: Policy
    ) -> tuple[Answer[T], Deployment] | None:
        """When only cooling deployments remain, wait for the first to reopen if
        it does so within `max_retry_after_s` and the deadline."""
        now = self.clock.now()
        soonest = [(await self.health.health(d.name, now)).reopens_at for d in run.cooling]
        wait_s, index = min((t - now, i) for i, t in enumerate(soonest))
        limit = policy.fallback.backoff.max_retry_after_s
        if wait_s > limit or now + wait_s >= run.deadline:
            return None
        await self.clock.sleep(max(wait_s, 0.0))
        deployment = run.cooling[index]
        run.cooling = []
        result = await self._run_deployment(run, deployment, policy)
        return (result.answer, deployment) if result.answer is not None else None


async def _discard(kept: tuple[Answer[Any], Deployment] | None) -> None:
    if kept is not None and kept[0].discard is not None:
        await kept[0].discard()


def _unfit(run: _Run[Any], deployment: Deployment) -> AttemptRecord | None:
    """A skip for a deployment that cannot serve the request: it lacks a capability
    the request needs, or prompt + max tokens exceed its context window."""
    lacking = deployment.lacks(run.needs)
    if lacking:
        return _skipped(deployment, CAPABILITY, f"does not accept {describe_needs(lacking)}")
    if not deployment.fits(run.request):
        detail = "prompt + max tokens exceed the context window"
        return _skipped(deployment, ErrorKind.CONTEXT_WINDOW.value, detail)
    return None


def _skipped(deployment: Deployment, trigger: str, detail: str) -> AttemptRecord:
    return deployment.attempt(
        called=False,
        outcome="skipped",
        trigger=trigger,
        detail=detail,
    )
