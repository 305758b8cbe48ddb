"""tierwise talking to an OpenAI-compatible upstream (OpenAI, vLLM, llama.cpp,
Ollama, Groq, ...): a `ChatRequest` to a request body, answers, stream chunks and
error bodies back."""

from __future__ import annotations

from typing import Any

import orjson

from tierwise.errors import (
    ContentPolicyError,
    ContextWindowError,
    InvalidResponseError,
    ProviderError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamServerError,
    UpstreamTimeoutError,
)
from tierwise.types import (
    JSON,
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    ToolCallDelta,
)
from tierwise.wire.openai.shapes import (
    decode_logprobs,
    decode_tool_calls,
    decode_usage,
    encode_tool_calls,
)
from tierwise.wire.status import CONTEXT_MARKERS, POLICY_MARKERS, error_for_status

STATUS_KINDS: dict[int, type[ProviderError]] = {
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamServerError,
    408: UpstreamTimeoutError,
    413: ContextWindowError,
    429: RateLimitedError,
}
DONE = "[DONE]"
ERROR_PREFIX = "Error: "
"""Starts a failed tool's result: OpenAI's tool messages have no error flag."""


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
    if message.is_error:
        out["content"] = f"{ERROR_PREFIX}{message.text()}"
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = encode_tool_calls(message.tool_calls)
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


def decode_message(raw: JSON) -> Message:
    calls = raw.get("tool_calls")
    return Message(
        role=str(raw.get("role") or "assistant"),
        content=raw.get("content"),
        name=raw.get("name"),
        tool_calls=decode_tool_calls(calls) if calls else None,
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


def decode_event(data: str) -> list[StreamDelta] | None:
    """One stream event's `data` to deltas; None at `[DONE]`."""
    if data == DONE:
        return None
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidResponseError("stream event is not JSON") from None
    if not isinstance(chunk, dict):
        raise InvalidResponseError("stream chunk is not an object")
    if "error" in chunk:
        raise classify_error(500, chunk, None)
    return decode_chunk(chunk)


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
