"""Streaming through the same executor: commit only after the first tokens.

Before a stream commits (first content in hand, held-back prefix checked), any
trigger moves to the next attempt. After it commits, a failure ends the stream
with `StreamInterruptedError`, never a silent truncation, and is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self

from tierwise.deployments import Deployment
from tierwise.errors import (
    FirstTokenTimeoutError,
    ProviderError,
    StreamInterruptedError,
)
from tierwise.executor import Answer, Call, Clock
from tierwise.providers.base import Timeouts
from tierwise.record import RequestRecord
from tierwise.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    TokenLogprob,
    ToolCall,
    Usage,
)


@dataclass(slots=True)
class Assembler:
    """Accumulates deltas of choice 0 into a response."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, ToolCall] = field(default_factory=dict)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    has_content: bool = False

    def add(self, delta: StreamDelta) -> None:
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.index != 0:
            return
        if delta.text:
            self.text.append(delta.text)
            self.has_content = True
        for call in delta.tool_calls or ():
            current = self.calls.setdefault(call.index, ToolCall("", "", ""))
            current.id = call.id or current.id
            current.name = call.name or current.name
            current.arguments += call.arguments
            self.has_content = True
        self.logprobs.extend(delta.logprobs or ())
        self.finish_reason = delta.finish_reason or self.finish_reason

    def response(self, model: str) -> ChatResponse:
        calls = [self.calls[i] for i in sorted(self.calls)] or None
        message = Message("assistant", "".join(self.text) or None, tool_calls=calls)
        choice = Choice(0, message, self.finish_reason, self.logprobs or None)
        return ChatResponse("", model, [choice], self.usage)


@dataclass(slots=True)
class PendingStream:
    """An upstream stream with the deltas read before committing."""

    iterator: AsyncIterator[StreamDelta]
    buffered: list[StreamDelta]
    done: bool
    assembler: Assembler

    async def aclose(self) -> None:
        closer = getattr(self.iterator, "aclose", None)
        if closer is not None:
            await closer()


def open_stream(hold_back: int, clock: Clock) -> Call[PendingStream]:
    """The executor call for streams: read to the first token, then `hold_back`
    more content deltas (or the end), so checks can judge the prefix."""

    async def call(
        deployment: Deployment, request: ChatRequest, timeouts: Timeouts
    ) -> Answer[PendingStream]:
        started = clock.now()
        pending = PendingStream(
            aiter(deployment.provider.stream(request, timeouts)), [], False, Assembler()
        )
        try:
            await _read_first(pending, timeouts)
            first_ms = (clock.now() - started) * 1000
            await _read_more(pending, hold_back)
        except BaseException:
            await pending.aclose()
            raise
        view = pending.assembler.response(deployment.model)
        return Answer(pending, view, pending.done, first_ms, pending.aclose)

    return call


async def _next(pending: PendingStream) -> bool:
    try:
        delta = await anext(pending.iterator)
    except StopAsyncIteration:
        pending.done = True
        return False
    pending.buffered.append(delta)
    pending.assembler.add(delta)
    return True


async def _read_first(pending: PendingStream, timeouts: Timeouts) -> None:
    try:
        async with asyncio.timeout(timeouts.first_token_s):
            while not pending.assembler.has_content and await _next(pending):
                pass
    except TimeoutError:
        raise FirstTokenTimeoutError(f"no first token within {timeouts.first_token_s}s") from None


async def _read_more(pending: PendingStream, hold_back: int) -> None:
    seen = 0
    while seen < hold_back and not pending.done and await _next(pending):
        seen += 1


class ChatStream:
    """The committed stream: iterate for deltas; `record` is final afterwards."""

    def __init__(
        self,
        pending: PendingStream,
        request: ChatRequest,
        record: RequestRecord,
        deployment: Deployment,
        on_finish: Callable[[], Awaitable[None]],
    ) -> None:
        self.record, self.deployment = record, deployment
        self._pending, self._request, self._on_finish = pending, request, on_finish
        self._finished = False
        self.keep_logprobs = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._finished:
            await self._settle("cancelled", "closed by the client before the end")
        await self._pending.aclose()

    def response(self) -> ChatResponse:
        """What was streamed so far, as one response."""
        return self._pending.assembler.response(self.deployment.model)

    async def __aiter__(self) -> AsyncIterator[StreamDelta]:
        pending, strip = self._pending, not self.keep_logprobs
        try:
            for delta in pending.buffered:
                yield replace(delta, logprobs=None) if strip and delta.logprobs else delta
            if not pending.done:
                async for delta in pending.iterator:
                    pending.assembler.add(delta)
                    yield replace(delta, logprobs=None) if strip and delta.logprobs else delta
        except ProviderError as exc:
            await self._settle("error", f"stream failed after it started: {exc.message}", exc)
            raise StreamInterruptedError(str(exc), self.record) from None
        await self._settle("ok", "")

    async def _settle(self, status: str, detail: str, exc: ProviderError | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        attempt = self.record.attempts[-1]
        answer = self.response()
        self.record.answer = answer.text()
        if answer.text() or answer.tool_calls() or attempt.usage is None:
            attempt.usage, attempt.cost_usd = self.deployment.cost_usd(self._request, answer)
        if status != "ok":
            attempt.outcome = status
            attempt.trigger = exc.kind.value if exc else "cancelled"
            attempt.detail = detail
            self.record.status, self.record.error = status, detail
        await self._on_finish()
