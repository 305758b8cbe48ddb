"""The gateway's side of the OpenAI chat-completions API: a client's request to a
`ChatRequest`, answers and stream chunks back, errors."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tierwise.errors import RequestError
from tierwise.types import ChatRequest, ChatResponse, Message, StreamDelta, ToolCallDelta, Usage
from tierwise.wire.models import Path, first_problem, validator
from tierwise.wire.openai.models import (
    PASSTHROUGH,
    OpenAIAnswerMessage,
    OpenAIChatCompletion,
    OpenAIChatRequest,
    OpenAIChoice,
)
from tierwise.wire.openai.shapes import (
    decode_tool_calls,
    encode_logprobs,
    encode_tool_calls,
    encode_usage,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    402: "insufficient_quota",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}
_validate = validator(OpenAIChatRequest)


def decode_request(body: Any) -> tuple[ChatRequest, bool, bool]:
    """(request, stream, include_usage) from a `/v1/chat/completions` body."""
    try:
        valid = _validate(body)
    except ValidationError as exc:
        raise request_error(exc, body) from None
    get, stop = valid.get, valid.get("stop")
    request = ChatRequest(
        messages=[_message(m) for m in valid["messages"]],
        model=valid["model"],
        max_tokens=get("max_completion_tokens") or get("max_tokens"),
        temperature=get("temperature"),
        top_p=get("top_p"),
        stop=[stop] if isinstance(stop, str) else stop,
        n=get("n") or 1,
        tools=get("tools"),
        tool_choice=get("tool_choice"),
        response_format=get("response_format"),
        logprobs=bool(get("logprobs")),
        top_logprobs=get("top_logprobs"),
        user=get("user"),
        metadata=get("metadata") or {},
        extra={k: body[k] for k in PASSTHROUGH if k in body},
    )
    options = get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return request, bool(get("stream")), include_usage


def _message(valid: dict[str, Any]) -> Message:
    calls, role = valid.get("tool_calls"), valid["role"]
    return Message(
        role="tool" if role == "function" else role,
        content=valid.get("content"),
        name=valid.get("name"),
        tool_calls=decode_tool_calls(calls) if calls else None,
        tool_call_id=valid.get("tool_call_id"),
    )


def request_error(exc: ValidationError, body: Any) -> RequestError:
    """The first problem, named by its path; `param` is the field (within a message)."""
    path, problem = first_problem(exc, body)
    if not path:
        return RequestError(f"the body must be an object: {problem}", param="body")
    where = _dotted(path)
    field = path[:3] if path[0] == "messages" else path[:1]
    return RequestError(f"'{where}': {problem}", param=_dotted(field))


def _dotted(path: Path) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}" if out else step
    return out


def encode_message(message: Message) -> OpenAIAnswerMessage:
    out: OpenAIAnswerMessage = {"role": "assistant", "content": message.content, "refusal": None}
    if message.tool_calls:
        out["tool_calls"] = encode_tool_calls(message.tool_calls)
    return out


def encode_response(
    response: ChatResponse, completion_id: str, model: str, created: int
) -> OpenAIChatCompletion:
    choices: list[OpenAIChoice] = [
        {
            "index": choice.index,
            "message": encode_message(choice.message),
            "logprobs": encode_logprobs(choice.logprobs),
            "finish_reason": choice.finish_reason or "stop",
        }
        for choice in response.choices
    ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": encode_usage(response.usage),
    }


def encode_chunk(
    delta: StreamDelta, completion_id: str, model: str, created: int
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if delta.role:
        body["role"] = delta.role
    if delta.text:
        body["content"] = delta.text
    if delta.tool_calls:
        body["tool_calls"] = [_tool_delta(t) for t in delta.tool_calls]
    choice = {
        "index": delta.index,
        "delta": body,
        "logprobs": encode_logprobs(delta.logprobs) if delta.logprobs else None,
        "finish_reason": delta.finish_reason,
    }
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def _tool_delta(call: ToolCallDelta) -> dict[str, Any]:
    out: dict[str, Any] = {"index": call.index, "function": {"arguments": call.arguments}}
    if call.id:
        out["id"], out["type"] = call.id, "function"
    if call.name:
        out["function"]["name"] = call.name
    return out


def encode_usage_chunk(
    usage: Usage, completion_id: str, model: str, created: int
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": encode_usage(usage),
    }


def encode_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": ERROR_TYPES.get(status, "api_error"),
        "param": param,
        "code": code,
    }
    error.update(extra or {})
    return {"error": error}
