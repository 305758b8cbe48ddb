"""Anthropic shapes that both directions share: stop reasons, images, tool-use
blocks and usage, each converted one way here and back."""

from __future__ import annotations

from typing import Any

import orjson

from tierwise.types import JSON, ToolCall, Usage
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
        "id": call.id,
        "name": call.name,
        "input": loads_object(call.arguments),
    }


def loads_object(text: str) -> JSON:
    """Tool arguments as an object; anything else is an empty one."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def encode_usage(usage: Usage | None) -> AnthropicUsage:
    usage = usage or Usage()
    return {
        "input_tokens": usage.input_tokens - usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": 0,
    }


def decode_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    created = int(raw.get("cache_creation_input_tokens") or 0)
    total_in = int(raw.get("input_tokens") or 0) + cached + created
    return Usage(total_in, int(raw.get("output_tokens") or 0), cached)
