"""The cache interface and what it holds: the answer, and who gave it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tierwise.types import ChatResponse, Choice, Message, TokenLogprob, ToolCall, Usage


@dataclass(slots=True, frozen=True)
class CachedAnswer:
    """An answer as the client received it, with the deployment and tier that gave it."""

    response: ChatResponse
    deployment: str
    tier: str
    stored_at: float


class ResponseCache(Protocol):
    """Where cached answers live: `get` returns None for a missing or expired key."""

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, entry: CachedAnswer, ttl_s: float) -> None: ...

    async def aclose(self) -> None: ...


def encode(entry: CachedAnswer) -> bytes:
    return orjson.dumps(entry)


def decode(raw: str | bytes) -> CachedAnswer:
    data = orjson.loads(raw)
    response = data["response"]
    usage = response.get("usage")
    return CachedAnswer(
        ChatResponse(
            response["id"],
            response["model"],
            [_choice(c) for c in response["choices"]],
            Usage(**usage) if usage is not None else None,
            response.get("created", 0),
        ),
        data["deployment"],
        data["tier"],
        data["stored_at"],
    )


def _choice(data: dict[str, Any]) -> Choice:
    m = data["message"]
    calls = [ToolCall(**c) for c in m["tool_calls"]] if m.get("tool_calls") else None
    message = Message(m["role"], m.get("content"), m.get("name"), calls, m.get("tool_call_id"))
    logprobs = data.get("logprobs")
    tokens = [TokenLogprob(**t) for t in logprobs] if logprobs else None
    return Choice(data["index"], message, data.get("finish_reason"), tokens)
