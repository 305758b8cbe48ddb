"""Turns for formats with only `user` and `assistant` roles (Anthropic, Bedrock Converse):
system turns are left to the caller, tool results ride in user turns, and consecutive
turns of one role merge into one."""

from __future__ import annotations

from collections.abc import Callable

from tierwise.types import JSON, Message


def merge_turns(messages: list[Message], blocks: Callable[[Message], list[JSON]]) -> list[JSON]:
    """`{role, content: blocks(message)}` per non-system message, merging neighbours."""
    out: list[JSON] = []
    for message in messages:
        if message.role in ("system", "developer"):
            continue
        role = "assistant" if message.role == "assistant" else "user"
        content = blocks(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    return out
