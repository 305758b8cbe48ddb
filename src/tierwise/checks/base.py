"""The check and confidence interfaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tierwise.record import CheckResult
from tierwise.types import ChatRequest, ChatResponse


@dataclass(slots=True, frozen=True)
class AnswerView:
    """An answer to judge; `complete` is False for a held-back stream prefix;
    `deployment` names the deployment that gave it ("" when unknown)."""

    request: ChatRequest
    response: ChatResponse
    complete: bool = True
    deployment: str = ""

    @property
    def text(self) -> str:
        return self.response.text()


class Check(Protocol):
    """Passes or fails an answer. On an incomplete answer a check fails only
    when the prefix already decides it."""

    @property
    def name(self) -> str: ...

    async def evaluate(self, answer: AnswerView) -> CheckResult: ...


class ConfidenceSignal(Protocol):
    """A confidence in [0, 1] for an answer, or None when it carries no signal."""

    @property
    def name(self) -> str: ...

    def confidence(self, answer: AnswerView) -> float | None: ...
