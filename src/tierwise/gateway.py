"""`Gateway`: route -> plan -> execute -> account -> record, for chat and streams."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Generic, Self, TypeVar

from tierwise.accounting import bill
from tierwise.cache.base import CachedAnswer
from tierwise.cache.caching import Probe, build_caching, fill_hit
from tierwise.cache.replay import ReplayStream
from tierwise.config import GatewayConfig
from tierwise.deployments import EMBEDDING, Deployment
from tierwise.embedding_call import EmbeddingResult, embedding_call
from tierwise.embedding_types import EmbeddingRequest
from tierwise.errors import AllAttemptsFailedError, RequestError
from tierwise.executor import Answer, Call, Clock, Executor, Outcome
from tierwise.experiments.state import Experiments
from tierwise.exploration import Exploration
from tierwise.providers.base import HttpClient, Startable, Timeouts
from tierwise.record import Decision, RequestRecord
from tierwise.routing.base import WarmUp
from tierwise.state.base import HealthState
from tierwise.state.factory import SharedState, build_state
from tierwise.streaming import ChatStream, open_stream
from tierwise.targets import Target, Targets, build_deployments
from tierwise.types import ChatRequest, ChatResponse

RecordSink = Callable[[RequestRecord], None]
T = TypeVar("T")
_ids = {"prefix": os.urandom(8).hex()}
_ID_COUNTER = itertools.count()


def _new_prefix() -> None:
    _ids["prefix"] = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    """A unique id without a syscall per request: a random per-process prefix
    (renewed in forked children) and a counter; 32 hex digits, like a UUID."""
    return f"{_ids['prefix']}{next(_ID_COUNTER):016x}"


@dataclass(slots=True)
class _Run(Generic[T]):
    record: RequestRecord
    target: Target
    decision: Decision | None
    request: ChatRequest
    outcome: Outcome[T]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request comes from, for its record and its limits: the name and team
    of the API key it came with, the key's user (logged when the request names
    none), the id the client sent (not unique) and the scopes it spends in."""

    caller: str | None = None
    team: str | None = None
    user: str | None = None
    client_request_id: str | None = None
    scopes: tuple[str, ...] = ()


ANYONE = Origin()


@dataclass(slots=True)
class ChatResult:
    response: ChatResponse
    record: RequestRecord


class Gateway:
    """The library entry point: `await gateway.chat(request)` or
    `async with await gateway.stream(request) as stream`."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        health: HealthState | None = None,
        state: SharedState | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
        sinks: list[RecordSink] | None = None,
    ) -> None:
        self.config = config
        self._http = HttpClient()
        self.deployments = build_deployments(config, self._http, environ)
        self.targets = Targets(config, self.deployments)
        self.state = state or build_state(config)
        self.health = health or self.state.health
        self.executor = Executor(
            self.health, clock=clock or self.state.clock, rng=rng, budget=self.state.budget
        )
        self.sinks = list(sinks or [])
        self.experiments = Experiments(config.experiments)
        self._variant_targets: dict[tuple[str, str], Target] = {}
        self.cache = build_caching(config, self.executor.clock.now)
        if config.drift.enabled and config.drift.embedding_sample > 0:
            from tierwise.drift.sketch import PromptSketcher

            self.sinks.insert(0, PromptSketcher(config.drift.embedding_sample, rng))
        self.exploration = Exploration(config, self.executor, self.targets, self._emit, rng=rng)
        if self.exploration:
            self.sinks.append(self.exploration.observe)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def warm_up(self) -> None:
        """Load what loads lazily (local model servers, router models and example
        embeddings) so the first request is fast."""
        for deployment in self.deployments.values():
            if isinstance(deployment.provider, Startable):
                await deployment.provider.start()
        for name in self.targets.names():
            router = self.targets.get(name).router
            if isinstance(router, WarmUp):
                await asyncio.to_thread(router.warm_up)

    async def aclose(self, *, keep_state: bool = False) -> None:
        """Close everything; `keep_state` leaves the shared state open for another
        Gateway built on it."""
        await self.exploration.aclose()
        for deployment in self.deployments.values():
            await deployment.provider.aclose()
        await self._http.aclose()
        if not keep_state:
            await self.state.aclose()
        if self.cache is not None:
            await self.cache.aclose()

    async def decide(
        self, request: ChatRequest, record: RequestRecord | None = None
    ) -> tuple[Target, Decision | None]:
        """Resolve the request's `model` (through its experiment's arm, if any, noted
        on `record`) and, for a route, ask its router (through exploration, when the
        route explores and this is a real request: `record` is given)."""
        target = self.targets.get(request.model)
        if target.kind == EMBEDDING:
            raise RequestError(f"model {request.model!r} serves embeddings only", param="model")
        if record is not None and self.experiments:
            target = self._arm(request, record, target)
        router = target.router if record is None else self.exploration.router_for(target)
        if router is None:
            return target, None
        tiers = [s.tier for s in target.steps]
        return target, await router.decide(request, tiers)

    def _arm(self, request: ChatRequest, record: RequestRecord, target: Target) -> Target:
        """The variant's target, keeping the route's name and baseline for the bill."""
        arm = self.experiments.arm(request, record.api_key, record.request_id, record.user)
        if arm is None:
            return target
        if arm.counted:
            record.experiment, record.variant = arm.experiment, arm.variant
            record.unit_key = arm.unit
        if arm.target is None:
            return target
        key = (arm.target, target.name)
        swapped = self._variant_targets.get(key)
        if swapped is None:
            chosen = self.targets.get(arm.target)
            swapped = replace(chosen, name=target.name, baseline=target.baseline)
            self._variant_targets[key] = swapped
        return swapped

    async def chat(
        self,
        request: ChatRequest,
        *,
        request_id: str | None = None,
        origin: Origin = ANYONE,
    ) -> ChatResult:
        """Answer `request`, falling back as the route's policy says; raises
        AllAttemptsFailedError (with every attempt) when nothing answered.
        `origin` says whom the request is logged under and where it spends."""
        probe = await self._probe(request)
        if probe is not None and probe.hit is not None:
            record = self._hit(request, probe.hit, request_id, origin)
            self._emit(record)
            return ChatResult(probe.hit.response, record)
        run = await self._run(request, request_id, origin, lambda target: _complete, probe)
        if run.outcome.answer is None:
            raise AllAttemptsFailedError(run.record)
        self.exploration.after(run.record, run.request, run.target)
        response = run.outcome.answer.value
        if run.request.logprobs and not request.logprobs:
            response = without_logprobs(response)
        if probe is not None and self.cache is not None:
            await self.cache.remember(probe, run.record, response)
        return ChatResult(response, run.record)

    async def stream(
        self,
        request: ChatRequest,
        *,
        request_id: str | None = None,
        origin: Origin = ANYONE,
    ) -> ChatStream:
        """Run the plan until one stream commits (first tokens in hand and checks
        passed on the held-back prefix); iterate the result for its deltas.
        `origin` as for `chat`."""
        probe = await self._probe(request)
        if probe is not None and probe.hit is not None:
            return self._replay(request, probe.hit, request_id, origin)
        clock = self.executor.clock
        run = await self._run(
            request, request_id, origin, lambda t: open_stream(t.hold_back, clock), probe
        )
        record, target, decision, outcome = run.record, run.target, run.decision, run.outcome
        if outcome.answer is None or outcome.deployment is None:
            raise AllAttemptsFailedError(record)
        reservation = outcome.reservation

        async def finish() -> None:
            await self.executor.settle_later(reservation, record.attempts[-1])
            self._finish_stream(record, target, decision)
            self.exploration.after(record, run.request, target)
            if probe is not None and self.cache is not None:
                served = stream.response()
                if not request.logprobs:
                    served = without_logprobs(served)
                await self.cache.remember(probe, record, served)

        stream = ChatStream(outcome.answer.value, run.request, record, outcome.deployment, finish)
        stream.keep_logprobs = request.logprobs or not run.request.logprobs
        return stream

    async def embed(
        self,
        request: EmbeddingRequest,
        *,
        request_id: str | None = None,
        origin: Origin = ANYONE,
    ) -> EmbeddingResult:
        """Embed on the tier or deployment `request.model` names: balanced, retried
        and falling back as for chat (no router, no checks), priced and recorded."""
        target = self.targets.embedding(request.model)
        chat = request.as_chat()
        record = self._new_record(chat, request_id, origin)
        record.route = target.name
        plan, call = target.plan_from(""), embedding_call(request)
        try:
            outcome = await self.executor.run(
                chat, plan, target.policy, call, record.attempts, origin.scopes
            )
        except asyncio.CancelledError:
            self._cancelled(record, target, None)
            raise
        self._close(record, outcome, target, None)
        if outcome.answer is None:
            raise AllAttemptsFailedError(record)
        return EmbeddingResult(outcome.answer.value, record)

    async def _run(
        self,
        request: ChatRequest,
        request_id: str | None,
        origin: Origin,
        call_for: Callable[[Target], Call[T]],
        probe: Probe | None = None,
    ) -> _Run[T]:
        """Record, route, plan and execute; the record is closed (or billed as
        cancelled) before this returns or raises."""
        record = self._new_record(request, request_id, origin)
        record.cache = probe.result if probe is not None else None
        target, decision = await self.decide(request, record)
        record.route, record.decision = target.name, decision
        plan = target.plan_for(decision.target if decision else "", request)
        request = target.policy.prepare(request)
        try:
            outcome = await self.executor.run(
                request, plan, target.policy, call_for(target), record.attempts, origin.scopes
            )
        except asyncio.CancelledError:
            self._cancelled(record, target, decision)
            raise
        self._close(record, outcome, target, decision)
        return _Run(record, target, decision, request, outcome)

    async def _probe(self, request: ChatRequest) -> Probe | None:
        """The response cache's lookup, when the request's route has a cache; an entry
        whose deployment is no longer configured counts as a miss."""
        if self.cache is None:
            return None
        probe = await self.cache.lookup(self.targets.get(request.model).name, request)
        if probe is not None and probe.hit and probe.hit.deployment not in self.deployments:
            probe.hit = None
        return probe

    def _hit(
        self,
        request: ChatRequest,
        hit: CachedAnswer,
        request_id: str | None,
        origin: Origin,
    ) -> RequestRecord:
        target = self.targets.get(request.model)
        record = self._new_record(request, request_id, origin)
        record.route = target.name
        fill_hit(record, hit, target.baseline.price if target.baseline else None)
        record.latency_ms = (time.time() - record.started_at) * 1000
        return record

    def _replay(
        self,
        request: ChatRequest,
        hit: CachedAnswer,
        request_id: str | None,
        origin: Origin,
    ) -> ChatStream:
        """A cached answer as a stream; its record is emitted when the stream ends."""
        record = self._hit(request, hit, request_id, origin)

        async def finish() -> None:
            record.latency_ms = (time.time() - record.started_at) * 1000
            self._emit(record)

        deployment = self.deployments[hit.deployment]
        return ReplayStream(hit.response, request, record, deployment, finish)

    def _new_record(
        self, request: ChatRequest, request_id: str | None, origin: Origin
    ) -> RequestRecord:
        rid = request_id or new_request_id()
        return RequestRecord(
            rid,
            request.model,
            started_at=time.time(),
            user=request.user or origin.user,
            api_key=origin.caller,
            team=origin.team,
            prompt=request.last_user_text(),
            client_request_id=origin.client_request_id,
        )

    def _close(
        self,
        record: RequestRecord,
        outcome: Outcome[T],
        target: Target,
        decision: Decision | None,
    ) -> None:
        if outcome.deployment is not None:
            record.final_deployment = outcome.deployment.name
            record.final_tier = outcome.deployment.tier
            record.first_token_ms = record.attempts[-1].first_token_ms
        record.status = (
            "error" if outcome.answer is None else ("degraded" if outcome.degraded else "ok")
        )
        record.error = outcome.error if record.status != "ok" else None
        if outcome.answer is not None and target.policy.judges:
            record.checked = "complete" if outcome.answer.complete else "prefix"
        self._bill(record, target, decision)
        if outcome.answer is not None and not outcome.answer.complete:
            return
        if outcome.answer is not None:
            record.answer = outcome.answer.view.text()
        self._emit(record)

    def _cancelled(self, record: RequestRecord, target: Target, decision: Decision | None) -> None:
        record.status, record.error = "cancelled", "the caller went away"
        self._bill(record, target, decision, with_baseline=False)
        self._emit(record)

    def _finish_stream(
        self, record: RequestRecord, target: Target, decision: Decision | None
    ) -> None:
        self._bill(record, target, decision)
        self._emit(record)

    def _bill(
        self,
        record: RequestRecord,
        target: Target,
        decision: Decision | None,
        with_baseline: bool = True,
    ) -> None:
        """Latency so far and the bill; the baseline prices the last usage seen."""
        record.latency_ms = (time.time() - record.started_at) * 1000
        final = next((a.usage for a in reversed(record.attempts) if a.usage), None)
        baseline = target.baseline.price if target.baseline else None
        record.cost = bill(record.attempts, decision, baseline, final if with_baseline else None)

    def _emit(self, record: RequestRecord) -> None:
        for sink in self.sinks:
            sink(record)


def without_logprobs(response: ChatResponse) -> ChatResponse:
    """The response without the logprobs the gateway asked for on its own behalf."""
    choices = [replace(c, logprobs=None) for c in response.choices]
    return replace(response, choices=choices)


async def _complete(
    deployment: Deployment, request: ChatRequest, timeouts: Timeouts
) -> Answer[ChatResponse]:
    response = await deployment.provider.complete(request, timeouts)
    return Answer(response, response)
