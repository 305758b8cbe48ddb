"""The `judge` check: a small model reads the conversation and the answer, is asked
whether the answer is correct, and its probability of "Yes" decides.

The judge sees the request's messages, the answer as the assistant's turn and one more
user turn with `QUESTION`; it answers one token at temperature 0 with logprobs. The
probability of "Yes" is read from that token: exp(logprob) when it says Yes, one minus
it when it says No. A judge that says neither, or fails, gives no verdict and the answer
passes (the check never blocks on its own outage). The offline evaluation
(`tierwise.evaluation.signal_scores`) asks the same question with the same messages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tierwise.checks.base import AnswerView
from tierwise.deployments import Deployment
from tierwise.errors import ConfigError, ProviderError
from tierwise.record import CheckResult
from tierwise.routing.context import BuildContext
from tierwise.routing.options import reject_unknown
from tierwise.types import ChatRequest, Message, TokenLogprob

QUESTION = "Is that answer correct? Reply Yes or No."
MAX_ANSWER_CHARS = 1000


def judge_messages(
    messages: Sequence[Message], answer: str, max_answer_chars: int = MAX_ANSWER_CHARS
) -> list[Message]:
    """The conversation, the answer (cut to `max_answer_chars`) as the assistant's
    turn, and the judge's question."""
    return [
        *messages,
        Message("assistant", answer[:max_answer_chars]),
        Message("user", QUESTION),
    ]


def p_yes(tokens: Sequence[TokenLogprob] | None) -> float | None:
    """P("Yes") read from the judge's first token, or None when it is neither Yes
    nor No."""
    if not tokens:
        return None
    word = tokens[0].token.strip().strip(".").lower()
    p = math.exp(min(tokens[0].logprob, 0.0))
    if word == "yes":
        return p
    if word == "no":
        return 1.0 - p
    return None


@dataclass(frozen=True, slots=True)
class JudgeCheck:
    """Fails an answer when `deployment` gives it P("Yes") below `min_p_yes`; the
    judge call's cost is charged to the check."""

    deployment: Deployment
    min_p_yes: float = 0.5
    max_answer_chars: int = MAX_ANSWER_CHARS
    name: str = "judge"

    @classmethod
    def from_options(cls, context: BuildContext, **options: Any) -> JudgeCheck:
        deployment = context.deployment(options.pop("deployment", None), "checks.deployment")
        known = ("min_p_yes", "max_answer_chars", "name")
        reject_unknown(options, known, "check 'judge'", "checks")
        threshold = float(options.pop("min_p_yes", 0.5))
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("check 'judge': min_p_yes must be in [0, 1]", key="checks.min_p_yes")
        return cls(deployment, threshold, **options)

    def request(self, answer: AnswerView) -> ChatRequest:
        """The judge's request for `answer`."""
        messages = judge_messages(answer.request.messages, answer.text, self.max_answer_chars)
        return ChatRequest(messages, max_tokens=1, temperature=0.0, logprobs=True)

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        if not answer.complete or answer.response.tool_calls():
            return CheckResult(self.name, True)
        request = self.request(answer)
        try:
            reply = await self.deployment.provider.complete(request, self.deployment.timeouts)
        except ProviderError as exc:
            return CheckResult(self.name, True, f"judge unavailable: {exc.kind.value}")
        _, cost = self.deployment.cost_usd(request, reply)
        choices = reply.choices
        score = p_yes(choices[0].logprobs if choices else None)
        if score is None:
            return CheckResult(self.name, True, "judge gave no verdict", cost)
        passed = score >= self.min_p_yes
        reason = "" if passed else f"judge P(yes) {score:.2f} < {self.min_p_yes}"
        return CheckResult(self.name, passed, reason, cost)
