"""The `answer_cascade` router: the gateway's side of a per-category answer cascade
(see `tierwise.checks.cascade_policy`). It reads the prompt's category as the offline
evaluation does and plans exactly the cascade's tiers: the stage's anchor, then the
final model (or the final model alone). The route's `vote` check, given the same
`cascades`, asks the stage's other models and decides whether the anchor's answer is
served."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tierwise.checks.cascade_policy import Cascade, CascadePolicy, tiered_models
from tierwise.errors import ConfigError
from tierwise.record import Decision
from tierwise.routing.context import BuildContext
from tierwise.routing.options import reject_unknown
from tierwise.types import ChatRequest

KEY = "router.cascades"


@dataclass(frozen=True, slots=True)
class AnswerCascadeRouter:
    """Plans the tiers of the prompt category's cascade; a category the policy does
    not name (and no `*`) goes to the route's last tier."""

    policy: CascadePolicy
    tier_of: Mapping[str, str]
    name: str = "answer_cascade"

    @classmethod
    def from_options(
        cls,
        context: BuildContext,
        cascades: object = None,
        name: str = "answer_cascade",
        **unknown: object,
    ) -> AnswerCascadeRouter:
        reject_unknown(unknown, ("cascades", "name"), "router 'answer_cascade'", "router")
        policy = CascadePolicy.from_options(cascades, KEY)
        tier_of = {m: context.deployment(m, KEY).tier for m in policy.models()}
        for model in policy.tiered():
            members = sorted(n for n, d in context.deployments.items() if d.tier == tier_of[model])
            if members != [model]:
                raise ConfigError(
                    f"tier {tier_of[model]!r} of {model!r} must hold only {model!r}, so that "
                    f"its answer is the one voted on; it holds {', '.join(members)}",
                    key=KEY,
                )
        return cls(policy, tier_of, name)

    def path(self, cascade: Cascade) -> list[str]:
        """The tiers the cascade calls through the executor: anchor, then final (a
        cascade without a stage: the final alone, with nothing after it)."""
        return [self.tier_of[m] for m in tiered_models(cascade)]

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        group, cascade = self.policy.for_prompt(request.last_user_text())
        if cascade is None:
            reason = f"{group}: no cascade for this category, the last tier"
            return Decision(targets[-1], {targets[-1]: 1.0}, reason, self.name)
        path = self.path(cascade)
        missing = [t for t in path if t not in targets]
        if missing:
            raise ConfigError(
                f"cascade {cascade.spec!r} needs tier {missing[0]!r}, not a tier of the route",
                key=f"{KEY}.{group}",
            )
        scores = {t: 1.0 for t in path}
        target = ">".join(path) if len(path) > 1 else path[0] + ">"
        return Decision(target, scores, f"{group}: {cascade.spec}", self.name)
