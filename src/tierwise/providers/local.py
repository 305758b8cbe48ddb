"""A local GGUF model as a provider: a llama.cpp server started on first use,
spoken to through the OpenAI-compatible adapter."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

from tierwise.config import DeploymentConfig
from tierwise.errors import UpstreamConnectionError
from tierwise.localmodels import LOCAL_MODELS, LocalModelError, resolve_model_file
from tierwise.providers.base import HttpClient, Timeouts
from tierwise.providers.llamacpp import LocalModelServer
from tierwise.providers.openai_compat import OpenAICompatProvider
from tierwise.providers.tool_text import calls_in_text, could_be_call, offered_names
from tierwise.types import ChatRequest, ChatResponse, Message, StreamDelta, ToolCallDelta

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


def _call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def _as_tool_calls(held: list[StreamDelta], names: set[str]) -> list[StreamDelta]:
    """Held deltas, or the tool calls their text consists of (usage kept)."""
    calls = calls_in_text("".join(d.text for d in held if d.index == 0), names, _call_id)
    if calls is None:
        return held
    tool_deltas = [ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(calls)]
    out = [StreamDelta(role="assistant", tool_calls=tool_deltas)]
    out.append(StreamDelta(finish_reason="tool_calls"))
    out += [StreamDelta(usage=d.usage) for d in held if d.usage is not None]
    return out


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
        response = await (await self._provider()).complete(request, timeouts)
        names = offered_names(request.tools)
        if not names or not response.choices or response.tool_calls():
            return response
        calls = calls_in_text(response.text(), names, _call_id)
        if calls is None:
            return response
        choice = replace(
            response.choices[0],
            message=Message("assistant", None, tool_calls=calls),
            finish_reason="tool_calls",
        )
        return replace(response, choices=[choice, *response.choices[1:]])

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        """Deltas as they come; with tools offered, an answer that starts as a tool call
        written as text is held to its end and sent as tool-call deltas if it is one."""
        deltas = (await self._provider()).stream(request, timeouts)
        names = offered_names(request.tools)
        held: list[StreamDelta] | None = [] if names else None
        async for delta in deltas:
            if held is None:
                yield delta
                continue
            held.append(delta)
            if not could_be_call("".join(d.text for d in held if d.index == 0)):
                for kept in held:
                    yield kept
                held = None
        for delta in _as_tool_calls(held or [], names):
            yield delta

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server, self._inner = None, None
