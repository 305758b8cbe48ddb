"""Agreement between two cheap answers as a quality check: a second model (or
the same one again) answers too, and the two must say the same thing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from tierwise.checks.base import AnswerView
from tierwise.deployments import Deployment
from tierwise.errors import ProviderError
from tierwise.record import CheckResult
from tierwise.routing.context import BuildContext
from tierwise.routing.options import reject_unknown

WORD = re.compile(r"\w+", re.UNICODE)


def similarity(first: str, second: str) -> float:
    """1.0 for equal JSON values or equal normalised text; else word-set Jaccard."""
    a, b = _canonical(first), _canonical(second)
    if a == b:
        return 1.0
    words_a, words_b = set(WORD.findall(a)), set(WORD.findall(b))
    if not words_a or not words_b:
        return 0.0
    return len(words_a & words_b) / len(words_a | words_b)


def _canonical(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return orjson.dumps(orjson.loads(stripped), option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONDecodeError:
            pass
    return " ".join(stripped.lower().split())


@dataclass(frozen=True, slots=True)
class AgreementCheck:
    """Fails when `deployment`'s answer to the same request is less similar
    than `min_similarity`; the second call's cost is charged to the check."""

    deployment: Deployment
    min_similarity: float = 0.6
    temperature: float | None = None
    name: str = "agreement"

    @classmethod
    def from_options(cls, context: BuildContext, **options: Any) -> AgreementCheck:
        deployment = context.deployment(options.pop("deployment", None), "checks.deployment")
        known = ("deployment", "min_similarity", "temperature", "name")
        reject_unknown(options, known, "check 'agreement'", "checks")
        return cls(deployment, **options)

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        if not answer.complete or answer.response.tool_calls():
            return CheckResult(self.name, True)
        request = answer.request
        if self.temperature is not None:
            request = request.with_changes(temperature=self.temperature)
        try:
            second = await self.deployment.provider.complete(request, self.deployment.timeouts)
        except ProviderError as exc:
            return CheckResult(self.name, True, f"second answer unavailable: {exc.kind.value}")
        _, cost = self.deployment.cost_usd(request, second)
        score = similarity(answer.text, second.text())
        passed = score >= self.min_similarity
        reason = "" if passed else f"answers agree {score:.2f} < {self.min_similarity}"
        return CheckResult(self.name, passed, reason, cost)
