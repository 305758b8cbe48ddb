"""Rule-based routing: length, attachments and keywords decide cheap or strong."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from tierwise.record import Decision
from tierwise.types import ChatRequest

DEFAULT_KEYWORDS = (
    "analyze",
    "compare",
    "evaluate",
    "recommend",
    "debug",
    "explain why",
    "tradeoff",
    "architecture",
)


@dataclass(frozen=True, slots=True)
class HeuristicRouter:
    """Short messages go cheap; attachments or a complex keyword go strong;
    everything else goes cheap. Cheap is the first target, strong the last."""

    short_chars: int = 50
    keywords: Sequence[str] = DEFAULT_KEYWORDS
    name: str = "heuristic"

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        started = time.perf_counter()
        strong, reason = self.classify(request)
        target = targets[-1] if strong else targets[0]
        elapsed_ms = (time.perf_counter() - started) * 1000
        scores = {"strong": 1.0 if strong else 0.0}
        return Decision(target, scores, reason, self.name, latency_ms=elapsed_ms)

    def classify(self, request: ChatRequest) -> tuple[bool, str]:
        """(needs the strong tier, reason in words)."""
        text = request.last_user_text()
        if len(text) < self.short_chars:
            return False, f"short message ({len(text)} < {self.short_chars} chars)"
        if any(m.has_attachment() for m in request.messages):
            return True, "message has an attachment"
        lowered = text.lower()
        hit = next((k for k in self.keywords if k in lowered), None)
        if hit is not None:
            return True, f"complex keyword {hit!r}"
        return False, "no rule for the strong tier fired"
