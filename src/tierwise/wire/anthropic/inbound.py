"""The gateway's side of the Anthropic Messages API: a client's request to a
`ChatRequest`, answers, stream events and errors back."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tierwise.errors import RequestError
from tierwise.types import ChatRequest, ChatResponse, Message
from tierwise.wire.anthropic.models import (
    AnthropicAnswerBlock,
    AnthropicMessage,
    AnthropicMessagesRequest,
)
from tierwise.wire.anthropic.shapes import (
    call_to_tool_use,
    encode_usage,
    image_to_part,
    stop_reason,
    tool_use_to_call,
)
from tierwise.wire.models import first_problem, validator

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    402: "billing_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_validate = validator(AnthropicMessagesRequest)
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def decode_request(body: Any) -> tuple[ChatRequest, bool]:
    """(request, stream) from a `/v1/messages` body."""
    try:
        valid = _validate(body)
    except ValidationError as exc:
        raise request_error(exc, body) from None
    get = valid.get
    messages = _system(get("system"))
    messages += [m for raw in valid["messages"] for m in decode_message(raw)]
    found = get("metadata")
    metadata = found if isinstance(found, dict) else {}
    stop = get("stop_sequences")
    request = ChatRequest(
        messages=messages,
        model=valid["model"],
        max_tokens=valid["max_tokens"],
        temperature=get("temperature"),
        top_p=get("top_p"),
        stop=[stop] if isinstance(stop, str) else stop,
        tools=_tools(get("tools")),
        tool_choice=_tool_choice(get("tool_choice")),
        user=metadata.get("user_id") if isinstance(metadata.get("user_id"), str) else None,
        extra=_parallel(get("tool_choice"), get("tools")),
    )
    return request, bool(get("stream"))


def request_error(exc: ValidationError, body: Any) -> RequestError:
    """The first problem as Anthropic words it: `messages.0.content: ...`."""
    path, problem = first_problem(exc, body)
    where = ".".join(str(step) for step in path) or "body"
    return RequestError(f"{where}: {problem}", param=where)


def _system(system: Any) -> list[Message]:
    if isinstance(system, list):
        return [Message("system", "".join(str(b.get("text", "")) for b in system))]
    return [Message("system", system)] if system else []


def decode_message(raw: dict[str, Any]) -> list[Message]:
    role, content = raw["role"], raw["content"]
    if isinstance(content, str):
        return [Message(role, content)]
    return _blocks_to_messages(role, content)


def _blocks_to_messages(role: str, blocks: list[Any]) -> list[Message]:
    results: list[Message] = []
    parts: list[dict[str, Any]] = []
    calls = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(image_to_part(block["source"]))
        elif kind == "tool_use":
            calls.append(tool_use_to_call(block))
        else:
            results.append(_tool_result(block))
    content: str | list[dict[str, Any]] | None = parts or None
    if parts and all(p["type"] == "text" for p in parts):
        content = "".join(p["text"] for p in parts)
    main = [Message(role, content, tool_calls=calls or None)] if (parts or calls) else []
    return results + main


def _tool_result(block: dict[str, Any]) -> Message:
    """A `tool_result` block as a tool message: one text block (or a string) as
    text, several as text parts; a failed tool keeps `is_error`."""
    content = block.get("content")
    parts: str | list[dict[str, Any]] = "" if content is None else str(content)
    if isinstance(content, list):
        texts = [str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b]
        parts = [{"type": "text", "text": t} for t in texts] if len(texts) > 1 else "".join(texts)
    call_id = str(block.get("tool_use_id", ""))
    return Message("tool", parts, tool_call_id=call_id, is_error=bool(block.get("is_error")))


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    return [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool.get("input_schema") or {"type": "object"},
            },
        }
        for tool in tools
    ]


def _tool_choice(choice: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if choice["type"] == "tool":
        return {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    return TOOL_CHOICES[choice["type"]]


def _parallel(choice: dict[str, Any] | None, tools: Any) -> dict[str, Any]:
    """`disable_parallel_tool_use` as OpenAI's `parallel_tool_calls` (sent with tools only)."""
    if tools and choice is not None and choice.get("disable_parallel_tool_use"):
        return {"parallel_tool_calls": False}
    return {}


def encode_response(response: ChatResponse, message_id: str, model: str) -> AnthropicMessage:
    message = response.choices[0].message if response.choices else Message("assistant", "")
    content: list[AnthropicAnswerBlock] = []
    if message.text():
        content.append({"type": "text", "text": message.text()})
    content.extend(call_to_tool_use(call) for call in message.tool_calls or ())
    reason = response.choices[0].finish_reason if response.choices else None
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(reason),
        "stop_sequence": None,
        "usage": encode_usage(response.usage),
    }


def encode_error(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
    }
