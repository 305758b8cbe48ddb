"""The cache key: a hash of the request normalised to what changes the answer.

The key covers the route name, the messages (role, content, name, tool calls, tool
call id; content made only of text parts counts as the joined text), `max_tokens`,
`temperature`, `top_p`, `stop`, `n`, `tools`, `tool_choice`, `response_format`,
`logprobs`, `top_logprobs` and the pass-through parameters in `extra` (`seed`,
penalties, ...). It leaves out `stream` (a streamed and a plain request share an
entry), `user` and `metadata` (who asked, not what). Dictionaries are hashed with
sorted keys, so their order does not matter. The hash is a 128-bit BLAKE2b.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from tierwise.types import ChatRequest, Message

KEY_VERSION = 1
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _flat(message: Message) -> Message:
    """Content made only of text parts as one string (how upstreams read it)."""
    content = message.content
    if not isinstance(content, list) or any(p.get("type") != "text" for p in content):
        return message
    text = "".join(str(p.get("text", "")) for p in content)
    return Message(message.role, text, message.name, message.tool_calls, message.tool_call_id)


def _normal(route: str, request: ChatRequest, messages: list[Message]) -> tuple[Any, ...]:
    return (
        KEY_VERSION,
        route,
        [_flat(m) if isinstance(m.content, list) else m for m in messages],
        request.max_tokens,
        request.temperature,
        request.top_p,
        request.stop,
        request.n,
        request.tools,
        request.tool_choice,
        request.response_format,
        request.logprobs,
        request.top_logprobs,
        request.extra,
    )


def _digest(value: tuple[Any, ...]) -> str:
    return hashlib.blake2b(orjson.dumps(value, option=_OPTIONS), digest_size=16).hexdigest()


def request_key(route: str, request: ChatRequest) -> str:
    """The exact-cache key of `request` on `route` (32 hex digits)."""
    return _digest(_normal(route, request, request.messages))


def context_key(route: str, request: ChatRequest) -> str:
    """What must match exactly for a semantic hit: the key of the request with the
    text of its last user message left out."""
    messages = list(request.messages)
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            messages[i] = Message("user", None)
            break
    return _digest(_normal(route, request, messages))


def cacheable(request: ChatRequest, nonzero_temperature: bool) -> bool:
    """One choice, no logprobs, and a temperature of 0 unless the route opts in; an
    absent temperature means the provider's default (1), which is above 0."""
    if request.n != 1 or request.logprobs:
        return False
    return nonzero_temperature or request.temperature == 0
