"""Runtime deployments and the ordered plan of tiers a request may use."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tierwise.capabilities import CAPABILITIES
from tierwise.checks.base import Check, ConfidenceSignal
from tierwise.config import FallbackConfig
from tierwise.pricing import Price
from tierwise.providers.base import Provider, Timeouts
from tierwise.record import AttemptRecord
from tierwise.tokens import count_message_tokens, count_text_tokens, encoding_name, fits_context
from tierwise.types import ChatRequest, ChatResponse, Usage

CHAT = "chat"
EMBEDDING = "embedding"
"""Deployment kinds: chat (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`)
and embedding (`/v1/embeddings`)."""


@dataclass(frozen=True, slots=True, eq=False)
class Deployment:
    """One upstream model endpoint, ready to call."""

    name: str
    tier: str
    model: str
    provider_kind: str
    provider: Provider
    price: Price = field(default_factory=Price)
    context_window: int | None = None
    max_output_tokens: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    weight: float = 1.0
    kind: str = CHAT
    capabilities: frozenset[str] = frozenset(CAPABILITIES)

    def lacks(self, needs: frozenset[str]) -> frozenset[str]:
        """What of `needs` this deployment cannot serve (empty: it serves them all)."""
        return needs - self.capabilities

    def fits(self, request: ChatRequest) -> bool:
        """Whether prompt + max tokens fit this deployment's context window (an
        embedding deployment's window bounds each input, which its upstream checks)."""
        if self.context_window is None or self.kind == EMBEDDING:
            return True
        wanted = request.max_tokens or min(self.max_output_tokens or 0, 1024)
        return fits_context(request, self.context_window, wanted, encoding_name(self.model))

    def estimate_usage(self, request: ChatRequest, answer: ChatResponse) -> Usage:
        """Usage counted with a real tokenizer, for answers that report none."""
        encoding = encoding_name(self.model)
        tool_text = "".join(c.name + c.arguments for c in answer.tool_calls())
        return Usage(
            count_message_tokens(request.messages, encoding),
            count_text_tokens(answer.text() + tool_text, encoding),
            estimated=True,
        )

    def attempt(self, **fields: Any) -> AttemptRecord:
        """A record of one attempt on this deployment."""
        return AttemptRecord(self.name, self.tier, self.model, self.provider_kind, **fields)

    def worst_case_usd(self, request: ChatRequest) -> Decimal:
        """Prompt tokens plus the most output this call may produce, at this
        deployment's prices: what a budget reserves before the call."""
        prompt = count_message_tokens(request.messages, encoding_name(self.model))
        output = request.max_tokens or self.max_output_tokens or DEFAULT_MAX_OUTPUT
        return self.price.worst_case_usd(prompt, output)

    def cost_usd(self, request: ChatRequest, answer: ChatResponse) -> tuple[Usage, Decimal]:
        usage = answer.usage or self.estimate_usage(request, answer)
        return usage, self.price.cost_usd(usage)


@dataclass(frozen=True, slots=True)
class Step:
    tier: str
    deployments: tuple[Deployment, ...]


LOGPROB_SIGNALS = ("logprob", "auto")
DEFAULT_MAX_OUTPUT = 4096


@dataclass(frozen=True, slots=True)
class Policy:
    """What a route asks of each answer, and how hard to try."""

    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    checks: tuple[Check, ...] = ()
    confidence: ConfidenceSignal | None = None
    confidence_threshold: float = 0.0
    return_last_on_checks: bool = True

    @property
    def judges(self) -> bool:
        """Whether answers are judged by checks or a confidence signal."""
        return bool(self.checks) or self.confidence is not None

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """The request as sent upstream: logprobs are asked for when the
        route's confidence signal reads them."""
        reads_logprobs = self.confidence is not None and self.confidence.name in LOGPROB_SIGNALS
        if reads_logprobs and not request.logprobs:
            return request.with_changes(logprobs=True)
        return request
