"""Wire-neutral request and response types.

Messages follow the OpenAI chat shape (the most common denominator); provider
adapters translate to and from their own wire formats at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

Role = Literal["system", "developer", "user", "assistant", "tool"]
JSON = dict[str, Any]


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Message:
    role: str
    content: str | list[JSON] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    is_error: bool = False
    """On a tool result: the tool failed (Anthropic's `is_error`)."""

    def text(self) -> str:
        """The message's text, with non-text parts left out."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")

    def has_attachment(self) -> bool:
        """True when the content carries a non-text part (image, audio, file)."""
        return isinstance(self.content, list) and any(
            p.get("type") not in (None, "text") for p in self.content
        )


@dataclass(slots=True)
class ChatRequest:
    """One chat request; `model` names a route, a tier or a deployment."""

    messages: list[Message]
    model: str = "auto"
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    n: int = 1
    tools: list[JSON] | None = None
    tool_choice: str | JSON | None = None
    response_format: JSON | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    extra: JSON = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> ChatRequest:
        return replace(self, **changes)

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return ""

    def all_text(self) -> str:
        return "\n".join(m.text() for m in self.messages)


@dataclass(slots=True, frozen=True)
class Usage:
    """Tokens of one call. `input_tokens` counts every prompt token; of those,
    `cached_input_tokens` were read from the provider's prompt cache and
    `cache_write_tokens` were written to it (each priced apart)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    estimated: bool = False
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.estimated or other.estimated,
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(slots=True, frozen=True)
class TokenLogprob:
    token: str
    logprob: float


@dataclass(slots=True)
class Choice:
    index: int
    message: Message
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    created: int = 0

    def text(self) -> str:
        return self.choices[0].message.text() if self.choices else ""

    def tool_calls(self) -> list[ToolCall]:
        if not self.choices:
            return []
        return self.choices[0].message.tool_calls or []


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamDelta:
    """One streamed piece of an answer (choice 0 unless `index` says otherwise)."""

    text: str = ""
    index: int = 0
    role: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    usage: Usage | None = None
