"""OpenAI chat-completions wire format on the gateway's side: decode requests,
encode answers, stream chunks and errors."""

from __future__ import annotations

from typing import Any

from tierwise.errors import RequestError
from tierwise.server import validate as v
from tierwise.types import ChatRequest, ChatResponse, Message, StreamDelta, ToolCall, Usage

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
PASSTHROUGH = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "parallel_tool_calls",
    "reasoning_effort",
    "service_tier",
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


def decode_request(body: Any) -> tuple[ChatRequest, bool, bool]:
    """(request, stream, include_usage) from a `/v1/chat/completions` body."""
    body = v.require_object(body, "body")
    messages = v.opt_list(body, "messages")
    if not messages:
        raise RequestError("'messages' is required and must be a non-empty array", param="messages")
    max_tokens = v.opt_int(body, "max_completion_tokens", 1)
    legacy_max_tokens = v.opt_int(body, "max_tokens", 1)
    request = ChatRequest(
        messages=[decode_message(m, i) for i, m in enumerate(messages)],
        model=v.req_str(body, "model"),
        max_tokens=max_tokens or legacy_max_tokens,
        temperature=v.opt_number(body, "temperature", 0, 2),
        top_p=v.opt_number(body, "top_p", 0, 1),
        stop=v.opt_stop(body, "stop"),
        n=v.opt_int(body, "n", 1, 16) or 1,
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        response_format=_response_format(body),
        logprobs=bool(v.opt_bool(body, "logprobs")),
        top_logprobs=v.opt_int(body, "top_logprobs", 0, 20),
        user=v.opt_str(body, "user"),
        metadata=v.opt_str_map(body, "metadata"),
        extra={k: body[k] for k in PASSTHROUGH if k in body},
    )
    stream = bool(v.opt_bool(body, "stream"))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return request, stream, include_usage


def decode_message(raw: Any, index: int) -> Message:
    where = f"messages[{index}]"
    raw = v.require_object(raw, where)
    role = raw.get("role")
    if role not in ROLES:
        raise RequestError(f"'{where}.role' must be one of {sorted(ROLES)}", param=f"{where}.role")
    content = raw.get("content")
    if content is not None and not isinstance(content, str | list):
        raise RequestError(
            f"'{where}.content' must be a string or an array", param=f"{where}.content"
        )
    if isinstance(content, list):
        _check_parts(content, f"{where}.content")
    return Message(
        role="tool" if role == "function" else str(role),
        content=content,
        name=v.opt_str(raw, "name"),
        tool_calls=_tool_calls(raw, where),
        tool_call_id=v.opt_str(raw, "tool_call_id"),
    )


def _check_parts(parts: list[Any], where: str) -> None:
    for part in parts:
        if not isinstance(part, dict):
            raise RequestError(f"'{where}' parts must be objects", param=where)
        image = part.get("image_url")
        if part.get("type") == "image_url" and not (
            isinstance(image, dict) and isinstance(image.get("url"), str)
        ):
            raise RequestError(f"'{where}' image_url parts need image_url.url", param=where)


def _tool_calls(raw: dict[str, Any], where: str) -> list[ToolCall] | None:
    calls = v.opt_list(raw, "tool_calls")
    if not calls:
        return None
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestError(
                f"'{where}.tool_calls' entries need function.name", param=f"{where}.tool_calls"
            )
        out.append(
            ToolCall(
                str(call.get("id", "")), function["name"], str(function.get("arguments") or "")
            )
        )
    return out


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = v.opt_list(body, "tools")
    if tools is None:
        return None
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestError(
                "'tools' entries must be {type: function, function: {name}}", param="tools"
            )
    return tools


def _tool_choice(body: dict[str, Any]) -> str | dict[str, Any] | None:
    choice = v.opt_tool_choice(body, "tool_choice")
    function = choice.get("function") if isinstance(choice, dict) else None
    if function is not None and not (
        isinstance(function, dict) and isinstance(function.get("name"), str)
    ):
        raise RequestError("'tool_choice.function' must be {name: string}", param="tool_choice")
    return choice


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise RequestError(
            "'response_format.type' must be text, json_object or json_schema",
            param="response_format",
        )
    schema = value.get("json_schema")
    if schema is not None and not isinstance(schema, dict):
        raise RequestError(
            "'response_format.json_schema' must be an object", param="response_format"
        )
    return dict(value)


def encode_usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def encode_message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.content, "refusal": None}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def encode_response(
    response: ChatResponse, completion_id: str, model: str, created: int
) -> dict[str, Any]:
    choices = []
    for choice in response.choices:
        logprobs: dict[str, Any] | None = None
        if choice.logprobs is not None:
            logprobs = {
                "content": [
                    {"token": t.token, "logprob": t.logprob, "bytes": None, "top_logprobs": []}
                    for t in choice.logprobs
                ]
            }
        choices.append(
            {
                "index": choice.index,
                "message": encode_message(choice.message),
                "logprobs": logprobs,
                "finish_reason": choice.finish_reason or "stop",
            }
        )
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
    logprobs: dict[str, Any] | None = None
    if delta.logprobs:
        logprobs = {
            "content": [
                {"token": t.token, "logprob": t.logprob, "bytes": None, "top_logprobs": []}
                for t in delta.logprobs
            ]
        }
    choice = {
        "index": delta.index,
        "delta": body,
        "logprobs": logprobs,
        "finish_reason": delta.finish_reason,
    }
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def _tool_delta(call: Any) -> dict[str, Any]:
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
