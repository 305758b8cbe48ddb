"""Confidence signals: token logprobs, or the model's own report in JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from tierwise.checks.base import AnswerView, ConfidenceSignal


@dataclass(frozen=True, slots=True)
class LogprobConfidence:
    """The geometric-mean token probability, exp(mean logprob), of choice 0."""

    name: str = "logprob"

    def confidence(self, answer: AnswerView) -> float | None:
        choices = answer.response.choices
        tokens = choices[0].logprobs if choices else None
        if not tokens:
            return None
        mean = sum(t.logprob for t in tokens) / len(tokens)
        return math.exp(mean)


@dataclass(frozen=True, slots=True)
class SelfReportedConfidence:
    """A number in [0, 1] that the model reports in a field of its JSON answer."""

    field: str = "confidence"
    name: str = "self_reported"

    def confidence(self, answer: AnswerView) -> float | None:
        if not answer.complete:
            return None
        try:
            value = orjson.loads(answer.text)
        except orjson.JSONDecodeError:
            return None
        reported = value.get(self.field) if isinstance(value, dict) else None
        if isinstance(reported, bool) or not isinstance(reported, int | float):
            return None
        return min(1.0, max(0.0, float(reported)))


@dataclass(frozen=True, slots=True)
class FirstConfidence:
    """The first signal that has something to say: token logprobs where the
    provider returns them, the model's own report otherwise."""

    signals: tuple[ConfidenceSignal, ...]
    name: str = "auto"

    @property
    def wants_logprobs(self) -> bool:
        return any(s.name == "logprob" for s in self.signals)

    def confidence(self, answer: AnswerView) -> float | None:
        for signal in self.signals:
            value = signal.confidence(answer)
            if value is not None:
                return value
        return None
