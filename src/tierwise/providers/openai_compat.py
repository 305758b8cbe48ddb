"""OpenAI chat-completions wire format: OpenAI, vLLM, llama.cpp, Ollama, Groq, ..."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tierwise.errors import (
    ContentPolicyError,
    ContextWindowError,
    InvalidResponseError,
    ProviderError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from tierwise.providers.base import (
    HttpClient,
    Timeouts,
    error_for_status,
    iter_sse,
    loads_event,
    parse_retry_after,
    read_json,
)
from tierwise.types import (
    JSON,
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
)

STATUS_KINDS: dict[int, type[ProviderError]] = {
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamServerError,
    408: UpstreamTimeoutError,
    413: ContextWindowError,
    429: RateLimitedError,
}
CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "exceeds the context",
)
POLICY_MARKERS = (
    "content_policy",
    "content_filter",
    "content management policy",
    "safety system",
    "flagged",
    "content filtering",
)


class OpenAICompatProvider:
    """Speaks `/chat/completions` to any OpenAI-compatible server."""

    def __init__(
        self,
        http: HttpClient,
        *,
        api_base: str,
        model: str,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._http, self._model = http, model
        self._url = api_base.rstrip("/") + "/chat/completions"
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        response = await self._http.post(self._url, self.encode(request), self._headers, timeouts)
        body = await read_json(response)
        if response.status >= 400:
            raise classify_error(response.status, body, parse_retry_after(response.headers))
        return decode_response(body, self._model)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        body = self.encode(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        response = await self._http.post(self._url, body, self._headers, timeouts)
        try:
            if response.status >= 400:
                error = await read_json(response)
                raise classify_error(response.status, error, parse_retry_after(response.headers))
            async for delta in _stream_deltas(response):
                yield delta
        finally:
            response.release()

    async def aclose(self) -> None:
        return None

    def encode(self, request: ChatRequest) -> JSON:
        return encode_request(request, self._model)


async def _stream_deltas(response: aiohttp.ClientResponse) -> AsyncIterator[StreamDelta]:
    async for _event, data in iter_sse(response):
        if data == "[DONE]":
            return
        chunk = loads_event(data)
        if not isinstance(chunk, dict):
            raise InvalidResponseError("stream chunk is not an object")
        if "error" in chunk:
            raise classify_error(500, chunk, None)
        for delta in decode_chunk(chunk):
            yield delta
    raise UpstreamConnectionError("stream ended without [DONE]")


def encode_request(request: ChatRequest, model: str) -> JSON:
    body: JSON = {"model": model, "messages": [encode_message(m) for m in request.messages]}
    optional: dict[str, Any] = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "user": request.user,
        "top_logprobs": request.top_logprobs,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    if request.n != 1:
        body["n"] = request.n
    if request.logprobs:
        body["logprobs"] = True
    body.update(request.extra)
    return body


def encode_message(message: Message) -> JSON:
    out: JSON = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def decode_message(raw: JSON) -> Message:
    calls = raw.get("tool_calls")
    tool_calls = None
    if calls:
        tool_calls = [
            ToolCall(
                str(c.get("id", "")),
                str(c["function"]["name"]),
                str(c["function"].get("arguments") or ""),
            )
            for c in calls
        ]
    return Message(
        role=str(raw.get("role") or "assistant"),
        content=raw.get("content"),
        name=raw.get("name"),
        tool_calls=tool_calls,
        tool_call_id=raw.get("tool_call_id"),
    )


def decode_response(body: Any, model: str) -> ChatResponse:
    """An OpenAI `chat.completion`; an answer with no choice is an invalid
    response (a blank one is returned, for the `empty` check to judge and bill)."""
    try:
        choices = [_decode_choice(c) for c in body["choices"]]
    except (KeyError, TypeError, IndexError) as exc:
        raise InvalidResponseError(f"malformed completion: missing {exc}") from None
    if not choices:
        raise InvalidResponseError("completion has no choices")
    return ChatResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model") or model),
        choices=choices,
        usage=decode_usage(body.get("usage")),
        created=int(body.get("created") or 0),
    )


def _decode_choice(raw: JSON) -> Choice:
    return Choice(
        index=int(raw.get("index", 0)),
        message=decode_message(raw["message"]),
        finish_reason=raw.get("finish_reason"),
        logprobs=decode_logprobs(raw.get("logprobs")),
    )


def decode_logprobs(raw: Any) -> list[TokenLogprob] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    return [TokenLogprob(str(t.get("token", "")), float(t["logprob"])) for t in raw["content"]]


def decode_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict) or "prompt_tokens" not in raw:
        return None
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        int(raw.get("prompt_tokens") or 0),
        int(raw.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0),
    )


def decode_chunk(chunk: JSON) -> list[StreamDelta]:
    deltas = [_decode_choice_delta(c) for c in chunk.get("choices") or ()]
    usage = decode_usage(chunk.get("usage"))
    if usage is not None:
        deltas.append(StreamDelta(usage=usage))
    return deltas


def _decode_choice_delta(raw: JSON) -> StreamDelta:
    delta = raw.get("delta") or {}
    calls = delta.get("tool_calls")
    tool_deltas = None
    if calls:
        tool_deltas = [
            ToolCallDelta(
                int(c.get("index", 0)),
                c.get("id"),
                (c.get("function") or {}).get("name"),
                (c.get("function") or {}).get("arguments") or "",
            )
            for c in calls
        ]
    return StreamDelta(
        text=delta.get("content") or "",
        index=int(raw.get("index", 0)),
        role=delta.get("role"),
        tool_calls=tool_deltas,
        finish_reason=raw.get("finish_reason"),
        logprobs=decode_logprobs(raw.get("logprobs")),
    )


def classify_error(status: int, body: Any, retry_after: float | None) -> ProviderError:
    """Translate an OpenAI-style error body into the taxonomy."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {"message": str(error or body)[:300]}
    message = str(error.get("message") or "")[:500]
    code = f"{error.get('code') or ''} {error.get('type') or ''}".lower()
    text = f"{code} {message.lower()}"
    if status in (400, 413, 422) and any(m in text for m in CONTEXT_MARKERS):
        return ContextWindowError(message, status=status)
    if status in (400, 403, 422) and any(m in text for m in POLICY_MARKERS):
        return ContentPolicyError(message, status=status)
    if status == 429 and "insufficient_quota" in code:
        return UpstreamAuthError(message, status=status)
    return error_for_status(status, message, STATUS_KINDS, retry_after)
