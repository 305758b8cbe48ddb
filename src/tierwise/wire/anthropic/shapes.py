"""Anthropic shapes that both directions share: stop reasons, images, tool-use
blocks and usage, each converted one way here and back."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tierwise.types import JSON, Message, ToolCall, Usage
from tierwise.wire.anthropic.models import AnthropicAnswerBlock, AnthropicUsage, StopReason

TO_NEUTRAL: dict[StopReason, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
"""Anthropic stop reasons to the neutral (OpenAI) finish reasons."""
FROM_NEUTRAL = {neutral: reason for reason, neutral in reversed(TO_NEUTRAL.items())}
"""The other way: the first Anthropic reason listed for each neutral one."""
_BY_NAME = dict[str, str](TO_NEUTRAL.items())


def stop_reason(finish_reason: str | None) -> StopReason:
    """A neutral finish reason as Anthropic's `stop_reason`."""
    return FROM_NEUTRAL.get(finish_reason or "stop", "end_turn")


def finish_reason(stop_reason: Any) -> Any:
    """An Anthropic `stop_reason` as a neutral finish reason (unknown ones as given)."""
    return _BY_NAME.get(str(stop_reason), stop_reason)


def image_to_part(source: JSON) -> JSON:
    """An image block's (validated) `source` as an OpenAI `image_url` part."""
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    else:
        url = str(source.get("url", ""))
    return {"type": "image_url", "image_url": {"url": url}}


def part_to_image(url: str) -> JSON:
    """An OpenAI image part's URL as an Anthropic image block."""
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def tool_use_to_call(block: JSON) -> ToolCall:
    return ToolCall(
        str(block.get("id", "")),
        str(block.get("name", "")),
        orjson.dumps(block.get("input") or {}).decode(),
    )


def call_to_tool_use(call: ToolCall) -> AnthropicAnswerBlock:
    return {
        "type": "tool_use",
        "id": tool_id(call.id),
        "name": call.name,
        "input": loads_object(call.arguments),
    }


_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_-]")


def tool_id(call_id: str) -> str:
    """A tool call id as Anthropic accepts it (`[A-Za-z0-9_-]+`), the same way for a
    `tool_use` and the `tool_result` that answers it."""
    return _NOT_IN_ID.sub("_", call_id)


def tool_result(message: Message) -> JSON:
    """A tool message as a `tool_result` block: text parts stay blocks."""
    content: str | list[JSON] = message.text()
    if isinstance(message.content, list) and len(message.content) > 1:
        texts = [p for p in message.content if p.get("type") == "text"]
        content = [{"type": "text", "text": str(p.get("text", ""))} for p in texts] or content
    block: JSON = {
        "type": "tool_result",
        "tool_use_id": tool_id(message.tool_call_id or ""),
        "content": content,
    }
    if message.is_error:
        block["is_error"] = True
    return block


def loads_object(text: str) -> JSON:
    """Tool arguments as an object; anything else is an empty one."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def encode_usage(usage: Usage | None) -> AnthropicUsage:
    """Anthropic's `input_tokens` leaves out cache reads and cache writes."""
    usage = usage or Usage()
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    return {
        "input_tokens": usage.input_tokens - cached - written,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def decode_usage(raw: Any) -> Usage | None:
    """Neutral `input_tokens` counts every prompt token: uncached, read and written."""
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    created = int(raw.get("cache_creation_input_tokens") or 0)
    total_in = int(raw.get("input_tokens") or 0) + cached + created
    output = int(raw.get("output_tokens") or 0)
    return Usage(total_in, output, cached, cache_write_tokens=created)
