"""Anthropic Messages wire format on the gateway's side: decode requests into
the neutral request, encode answers, stream events and errors."""

from __future__ import annotations

from typing import Any

import orjson

from tierwise.errors import RequestError
from tierwise.server import validate as v
from tierwise.types import ChatRequest, ChatResponse, Message, StreamDelta, ToolCall, Usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
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


def decode_request(body: Any) -> tuple[ChatRequest, bool]:
    """(request, stream) from a `/v1/messages` body."""
    body = v.require_object(body, "body")
    raw_messages = v.opt_list(body, "messages")
    if not raw_messages:
        raise RequestError("messages: field required (a non-empty array)", param="messages")
    max_tokens = v.opt_int(body, "max_tokens", 1)
    if max_tokens is None:
        raise RequestError("max_tokens: field required", param="max_tokens")
    messages = _system(body) + [
        m for i, raw in enumerate(raw_messages) for m in decode_message(raw, i)
    ]
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    request = ChatRequest(
        messages=messages,
        model=v.req_str(body, "model"),
        max_tokens=max_tokens,
        temperature=v.opt_number(body, "temperature", 0, 1),
        top_p=v.opt_number(body, "top_p", 0, 1),
        stop=v.opt_stop(body, "stop_sequences"),
        tools=_tools(body),
        tool_choice=_tool_choice(body.get("tool_choice")),
        user=metadata.get("user_id") if isinstance(metadata.get("user_id"), str) else None,
    )
    return request, bool(v.opt_bool(body, "stream"))


def _system(body: dict[str, Any]) -> list[Message]:
    system = body.get("system")
    if system is None:
        return []
    if isinstance(system, str):
        return [Message("system", system)] if system else []
    if isinstance(system, list):
        return [Message("system", "".join(_text_of(b, "system") for b in system))]
    raise RequestError("system: must be a string or an array of text blocks", param="system")


def _text_of(block: Any, where: str) -> str:
    if isinstance(block, dict) and block.get("type") == "text":
        return str(block.get("text", ""))
    raise RequestError(f"{where}: expected text blocks", param=where)


def decode_message(raw: Any, index: int) -> list[Message]:
    where = f"messages.{index}"
    raw = v.require_object(raw, where)
    role = raw.get("role")
    if role not in ("user", "assistant"):
        raise RequestError(f"{where}.role: must be 'user' or 'assistant'", param=f"{where}.role")
    content = raw.get("content")
    if isinstance(content, str):
        return [Message(role, content)]
    if not isinstance(content, list) or not content:
        raise RequestError(
            f"{where}.content: must be a string or a non-empty array of blocks",
            param=f"{where}.content",
        )
    return _blocks_to_messages(role, content, where)


def _blocks_to_messages(role: str, blocks: list[Any], where: str) -> list[Message]:
    results: list[Message] = []
    parts: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, f"{where}.content.{i}"))
        elif kind == "tool_use" and role == "assistant":
            calls.append(
                ToolCall(
                    str(block.get("id", "")),
                    str(block.get("name", "")),
                    orjson.dumps(block.get("input") or {}).decode(),
                )
            )
        elif kind == "tool_result" and role == "user":
            results.append(
                Message(
                    "tool",
                    _result_text(block.get("content")),
                    tool_call_id=str(block.get("tool_use_id", "")),
                )
            )
        else:
            raise RequestError(
                f"{where}.content.{i}: unsupported block type {kind!r}", param=f"{where}.content"
            )
    content: str | list[dict[str, Any]] | None = parts or None
    if parts and all(p["type"] == "text" for p in parts):
        content = "".join(p["text"] for p in parts)
    main = [Message(role, content, tool_calls=calls or None)] if (parts or calls) else []
    return results + main


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    found = block.get("source")
    source: dict[str, Any] = found if isinstance(found, dict) else {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise RequestError(f"{where}.source: must be base64 or url", param=where)
    return {"type": "image_url", "image_url": {"url": url}}


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = v.opt_list(body, "tools")
    if tools is None:
        return None
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise RequestError("tools: each tool needs a name", param="tools")
        out.append(
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool.get("description", ""),
                    "parameters": tool.get("input_schema") or {"type": "object"},
                },
            }
        )
    return out


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if mapped is None:
        raise RequestError("tool_choice.type: must be auto, any, tool or none", param="tool_choice")
    return mapped


def encode_usage(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {
        "input_tokens": usage.input_tokens - usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": 0,
    }


def encode_response(response: ChatResponse, message_id: str, model: str) -> dict[str, Any]:
    message = response.choices[0].message if response.choices else Message("assistant", "")
    content: list[dict[str, Any]] = []
    if message.text():
        content.append({"type": "text", "text": message.text()})
    for call in message.tool_calls or ():
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _loads_object(call.arguments),
            }
        )
    reason = response.choices[0].finish_reason if response.choices else None
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(reason or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": encode_usage(response.usage),
    }


def _loads_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def encode_error(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
    }


class EventEncoder:
    """Neutral deltas to Anthropic stream events (`(event, data)` pairs)."""

    def __init__(self, message_id: str, model: str) -> None:
        self._id, self._model = message_id, model
        self._block: tuple[str, int] | None = None
        self._next_index = 0
        self._tools: dict[int, int] = {}
        self._stop_reason = "end_turn"
        self.usage = Usage()

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": encode_usage(None),
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def feed(self, delta: StreamDelta) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.index != 0:
            return events
        if delta.text:
            events += self._open(("text", 0), {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": delta.text}))
        for call in delta.tool_calls or ():
            events += self._tool_events(call)
        if delta.finish_reason:
            self._stop_reason = STOP_REASONS.get(delta.finish_reason, "end_turn")
        return events

    def _tool_events(self, call: Any) -> list[tuple[str, dict[str, Any]]]:
        events = self._open(
            ("tool", call.index),
            {"type": "tool_use", "id": call.id or "", "name": call.name or "", "input": {}},
        )
        if call.arguments:
            events.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments}))
        return events

    def _open(
        self, key: tuple[str, int], block: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        if (
            self._block is not None
            and self._block[0] == key[0]
            and (key[0] == "text" or self._tools.get(key[1]) == self._block[1])
        ):
            return []
        events = self._close()
        index = self._next_index
        self._next_index += 1
        if key[0] == "tool":
            self._tools[key[1]] = index
        self._block = (key[0], index)
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return events

    def _delta(self, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        index = self._block[1] if self._block else 0
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if self._block is None:
            return []
        index, self._block = self._block[1], None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        usage = encode_usage(self.usage)
        return [
            *self._close(),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": usage,
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
