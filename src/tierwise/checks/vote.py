"""The `vote` check: the gateway's side of an answer cascade (see
`tierwise.checks.cascade_policy`). On the answer of a cascade's anchor, it asks the
stage's other models in order, as the offline evaluation does, and passes when `k`
normalised answers are the same as the anchor's; every other answer passes untouched.
The voters' costs are charged to the check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tierwise.checks.base import AnswerView
from tierwise.checks.cascade_policy import CascadePolicy, Stage
from tierwise.checks.normalise import normalise
from tierwise.deployments import Deployment
from tierwise.errors import ConfigError, ProviderError
from tierwise.record import ZERO, CheckResult
from tierwise.routing.context import BuildContext
from tierwise.types import ChatRequest

KEY = "checks.cascades"


@dataclass(frozen=True, slots=True)
class VoteCheck:
    """Accepts a cascade anchor's answer when enough of its stage agree with it."""

    policy: CascadePolicy
    deployments: Mapping[str, Deployment]
    name: str = "vote"

    @classmethod
    def from_options(cls, context: BuildContext, **options: Any) -> VoteCheck:
        unknown = sorted(set(options) - {"cascades", "name"})
        if unknown:
            raise ConfigError(
                f"check 'vote': unknown option {unknown[0]!r}; known: cascades, name",
                key=f"checks.{unknown[0]}",
            )
        policy = CascadePolicy.from_options(options.get("cascades"), KEY)
        deployments = {m: context.deployment(m, KEY) for m in policy.models()}
        return cls(policy, deployments, str(options.get("name", "vote")))

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        if not answer.complete or answer.response.tool_calls():
            return CheckResult(self.name, True)
        prompt = answer.request.last_user_text()
        _, cascade = self.policy.for_prompt(prompt)
        if cascade is None or not cascade.stages:
            return CheckResult(self.name, True)
        stage = cascade.stages[0]
        if answer.deployment != stage.models[0]:
            return CheckResult(self.name, True)
        wanted = normalise(answer.text, prompt)
        if wanted is None:
            return CheckResult(self.name, False, f"{stage.models[0]} gave no usable answer")
        return await self._vote(stage, answer.request, prompt, wanted)

    async def _vote(
        self, stage: Stage, request: ChatRequest, prompt: str, wanted: str
    ) -> CheckResult:
        """Ask the voters in order while `k` agreeing answers are still possible and
        not yet reached."""
        agree, cost, asked = 1, ZERO, []
        voters = stage.models[1:]
        for position, name in enumerate(voters):
            if agree >= stage.k or agree + len(voters) - position < stage.k:
                break
            text, paid, note = await self._ask(name, request)
            cost += paid
            asked.append(name + note)
            agree += normalise(text, prompt) == wanted
        if agree >= stage.k:
            return CheckResult(self.name, True, "", cost)
        reason = (
            f"{agree} of {len(stage.models)} answers agree with {stage.models[0]}'s, "
            f"{stage.k} needed (asked {', '.join(asked) or 'no other model'})"
        )
        return CheckResult(self.name, False, reason, cost)

    async def _ask(self, name: str, request: ChatRequest) -> tuple[str, Decimal, str]:
        """A voter's answer text, its cost and a note on an error (an error is no
        answer)."""
        deployment = self.deployments[name]
        try:
            reply = await deployment.provider.complete(request, deployment.timeouts)
        except ProviderError as exc:
            return "", ZERO, f" (error: {exc.kind.value})"
        _, cost = deployment.cost_usd(request, reply)
        return reply.text(), cost, ""
