"""A blocking wrapper over `Gateway` that owns a private event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

from tierwise.config import GatewayConfig
from tierwise.gateway import ChatResult, Gateway
from tierwise.types import ChatRequest, StreamDelta


class SyncGateway:
    """`Gateway` for synchronous code; not for use inside a running event loop."""

    def __init__(self, config: GatewayConfig, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self.gateway = Gateway(config, **options)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def chat(self, request: ChatRequest) -> ChatResult:
        return self._loop.run_until_complete(self.gateway.chat(request))

    def stream(self, request: ChatRequest) -> Iterator[StreamDelta]:
        """Yield deltas as they arrive; the stream's record is on the last
        `ChatStream`, available as `self.last_stream` once iteration ends."""
        stream = self._loop.run_until_complete(self.gateway.stream(request))
        self.last_stream = stream
        iterator = aiter(stream)
        try:
            while True:
                try:
                    yield self._loop.run_until_complete(anext(iterator))
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run_until_complete(stream.aclose())

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self.gateway.aclose())
            self._loop.close()
