"""A cached answer replayed as a stream: the same deltas an upstream would send."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

from tierwise.deployments import Deployment
from tierwise.record import RequestRecord
from tierwise.streaming import Assembler, ChatStream, PendingStream
from tierwise.types import ChatRequest, ChatResponse, StreamDelta, ToolCallDelta

WORDS_PER_DELTA = 4
_WORD = re.compile(r"\s*\S+\s*|\s+")


def replay_deltas(response: ChatResponse) -> list[StreamDelta]:
    """Choice 0 as deltas: the role, the text a few words at a time, each tool call,
    the finish reason, then the usage."""
    choice = response.choices[0]
    deltas = [StreamDelta(role="assistant")]
    words = _WORD.findall(choice.message.text())
    for i in range(0, len(words), WORDS_PER_DELTA):
        deltas.append(StreamDelta("".join(words[i : i + WORDS_PER_DELTA])))
    for i, call in enumerate(choice.message.tool_calls or ()):
        deltas.append(
            StreamDelta(tool_calls=[ToolCallDelta(i, call.id, call.name, call.arguments)])
        )
    deltas.append(StreamDelta(finish_reason=choice.finish_reason or "stop"))
    if response.usage is not None:
        deltas.append(StreamDelta(usage=response.usage))
    return deltas


async def _nothing() -> AsyncIterator[StreamDelta]:
    return
    yield


class ReplayStream(ChatStream):
    """A `ChatStream` over a cached answer: nothing upstream, nothing billed;
    `on_finish` runs once, at the end or when closed early."""

    def __init__(
        self,
        response: ChatResponse,
        request: ChatRequest,
        record: RequestRecord,
        deployment: Deployment,
        on_finish: Callable[[], Awaitable[None]],
    ) -> None:
        deltas, assembler = replay_deltas(response), Assembler()
        for delta in deltas:
            assembler.add(delta)
        pending = PendingStream(_nothing(), deltas, True, assembler)
        super().__init__(pending, request, record, deployment, on_finish)
        self._replay, self._done = deltas, on_finish
        self._closed = False

    async def aclose(self) -> None:
        await self._end()

    async def __aiter__(self) -> AsyncIterator[StreamDelta]:
        for delta in self._replay:
            yield delta
        await self._end()

    async def _end(self) -> None:
        if not self._closed:
            self._closed = True
            await self._done()
