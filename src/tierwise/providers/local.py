"""A local GGUF model as a provider: a llama.cpp server started on first use,
spoken to through the OpenAI-compatible adapter."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from tierwise.config import DeploymentConfig
from tierwise.errors import UpstreamConnectionError
from tierwise.localmodels import LOCAL_MODELS, LocalModelError, resolve_model_file
from tierwise.providers.base import HttpClient, Timeouts
from tierwise.providers.llamacpp import LocalModelServer
from tierwise.providers.openai_compat import OpenAICompatProvider
from tierwise.types import ChatRequest, ChatResponse, StreamDelta

DEFAULT_CONTEXT = 4096


def _stderr(line: str) -> None:
    print(f"tierwise: {line}", file=sys.stderr, flush=True)


def model_file(ref: str, log: Callable[[str], None] = _stderr) -> Path:
    """A GGUF path, or a known local model's name (e.g. `smollm2-135m`) resolved
    from its pip package and verified by sha256."""
    known = LOCAL_MODELS.get(ref)
    if known is not None:
        return resolve_model_file(known, log=log)
    path = Path(ref).expanduser()
    if not path.is_file():
        raise LocalModelError(
            f"model file {ref!r} not found; known local models: {', '.join(sorted(LOCAL_MODELS))}"
        )
    return path


class LlamaCppProvider:
    """Starts one llama.cpp server for the deployment's model on first call."""

    def __init__(
        self,
        http: HttpClient,
        config: DeploymentConfig,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        self._http, self._config, self._log = http, config, log
        self._server: LocalModelServer | None = None
        self._inner: OpenAICompatProvider | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> OpenAICompatProvider:
        """Load the model now (idempotent); later calls reuse the server."""
        async with self._lock:
            if self._inner is not None:
                return self._inner
            ref = self._config.model_path or self._config.model
            path = await asyncio.to_thread(model_file, ref, self._log)
            self._log(f"loading local model {self._config.name} from {path.name} ...")
            server = LocalModelServer(
                path,
                context_window=self._config.resolved_context_window() or 4096,
                model_alias=self._config.model,
            )
            await server.start()
            self._log(f"local model {self._config.name} ready at {server.base_url}")
            self._server = server
            self._inner = OpenAICompatProvider(
                self._http, api_base=server.base_url + "/v1", model=self._config.model
            )
            return self._inner

    async def _provider(self) -> OpenAICompatProvider:
        try:
            return self._inner or await self.start()
        except LocalModelError as exc:
            raise UpstreamConnectionError(f"local model unavailable: {exc}") from None

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        return await (await self._provider()).complete(request, timeouts)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        inner = await self._provider()
        async for delta in inner.stream(request, timeouts):
            yield delta

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server, self._inner = None, None
