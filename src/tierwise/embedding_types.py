"""Wire-neutral embedding request and answer, and how the executor sees them.

The executor, budgets and rate limits read requests as chat requests: an embedding
request shows itself to them as one user message of its texts (`as_chat`), and its
answer as a text-less answer that carries only usage (`as_answer`), so balancing,
breakers, fallback triggers and pricing are the same as for chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tierwise.tokens import count_text_tokens, encoding_name
from tierwise.types import JSON, ChatRequest, ChatResponse, Message, Usage

Vector = list[float]


@dataclass(slots=True)
class EmbeddingRequest:
    """Texts (or token-id arrays) to embed; `model` names a tier or deployment."""

    inputs: list[str] | list[list[int]]
    model: str
    dimensions: int | None = None
    user: str | None = None
    extra: JSON = field(default_factory=dict)

    def texts(self) -> list[str]:
        """The inputs that are text (token-id inputs have none)."""
        return [i for i in self.inputs if isinstance(i, str)]

    def as_chat(self) -> ChatRequest:
        """The request as the executor, budgets and rate limits read it."""
        text = "\n".join(self.texts())
        return ChatRequest([Message("user", text)], self.model, max_tokens=1, user=self.user)


@dataclass(slots=True)
class EmbeddingResponse:
    """One vector per input, in input order, and the tokens they cost."""

    vectors: list[Vector]
    model: str
    usage: Usage

    def as_answer(self) -> ChatResponse:
        """A text-less answer with this usage: what the executor prices."""
        return ChatResponse(id="", model=self.model, choices=[], usage=self.usage)


def count_input_tokens(request: EmbeddingRequest, model: str) -> Usage:
    """The request's input tokens, counted with a real tokenizer (for an upstream
    that reports none): token-id inputs count their ids."""
    encoding = encoding_name(model)
    tokens = sum(
        len(i) if isinstance(i, list) else count_text_tokens(i, encoding) for i in request.inputs
    )
    return Usage(tokens, estimated=True)
