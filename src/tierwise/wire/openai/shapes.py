"""OpenAI shapes that both directions share: tool calls, usage, logprobs."""

from __future__ import annotations

from typing import Any

from tierwise.types import JSON, TokenLogprob, ToolCall, Usage
from tierwise.wire.openai.models import OpenAIPromptDetails, OpenAIToolCallOut, OpenAIUsage


def encode_tool_calls(calls: list[ToolCall]) -> list[OpenAIToolCallOut]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def decode_tool_calls(calls: list[Any]) -> list[ToolCall]:
    return [
        ToolCall(
            str(c.get("id", "")),
            str(c["function"]["name"]),
            str(c["function"].get("arguments") or ""),
        )
        for c in calls
    ]


def encode_usage(usage: Usage | None) -> OpenAIUsage | None:
    """Cache reads in `prompt_tokens_details.cached_tokens`; cache writes in its
    `cache_write_tokens`, only when there are some."""
    if usage is None:
        return None
    details: OpenAIPromptDetails = {"cached_tokens": usage.cached_input_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": details,
    }


def decode_usage(raw: Any) -> Usage | None:
    """`prompt_tokens` counts every prompt token; `cached_tokens` (read from the
    cache) and `cache_write_tokens` (written to it) are parts of it."""
    if not isinstance(raw, dict) or "prompt_tokens" not in raw:
        return None
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        int(raw.get("prompt_tokens") or 0),
        int(raw.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0),
        cache_write_tokens=int(details.get("cache_write_tokens") or 0),
    )


def encode_logprobs(logprobs: list[TokenLogprob] | None) -> JSON | None:
    if logprobs is None:
        return None
    return {
        "content": [
            {"token": t.token, "logprob": t.logprob, "bytes": None, "top_logprobs": []}
            for t in logprobs
        ]
    }


def decode_logprobs(raw: Any) -> list[TokenLogprob] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    return [TokenLogprob(str(t.get("token", "")), float(t["logprob"])) for t in raw["content"]]
