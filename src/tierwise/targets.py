"""Compile config into runtime targets: what a request's `model` name resolves to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tierwise.capabilities import describe_needs, param_of, request_needs
from tierwise.checks.base import Check
from tierwise.checks.registry import build_check, build_confidence
from tierwise.config import CheckConfig, DeploymentConfig, GatewayConfig, RouteConfig
from tierwise.deployments import CHAT, EMBEDDING, Deployment, Policy, Step
from tierwise.errors import ConfigError, NoCapableDeploymentError, RequestError, RouteNotFoundError
from tierwise.providers.base import HttpClient, Timeouts
from tierwise.providers.registry import build_provider
from tierwise.routing.base import Router
from tierwise.routing.context import BuildContext
from tierwise.routing.options import keyed
from tierwise.routing.registry import build_router
from tierwise.types import ChatRequest

CHECKED_HOLD_BACK = 256
"""Content deltas a stream holds back by default on a route whose answers are
judged: answers up to this long are judged whole before the client sees them."""


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved name: the steps it may use (cheapest first), the router that
    picks the starting step (None: start at the first), its policy and baseline."""

    name: str
    steps: tuple[Step, ...]
    policy: Policy
    router: Router | None = None
    baseline: Deployment | None = None
    hold_back: int = 0
    kind: str = CHAT

    def plan_from(self, start: str) -> list[Step]:
        """The steps from tier `start` on; a path `a>b` (`a>` for one tier, as the
        `answer_cascade` router plans) is exactly those tiers, in that order."""
        names = [s.tier for s in self.steps]
        path = [t for t in start.split(">") if t]
        if ">" in start and path and all(t in names for t in path):
            return [self.steps[names.index(t)] for t in path]
        index = names.index(start) if start in names else 0
        return list(self.steps[index:])

    def plan_for(self, start: str, request: ChatRequest) -> list[Step]:
        """`plan_from(start)` for what `request` needs (images, audio, tools, a JSON
        schema): the executor skips, and records, each deployment that lacks it, so
        the start moves up to the first tier with a capable deployment; when the
        plan has none, it starts at the target's first tier that has one; when no
        tier has one, NoCapableDeploymentError, before any call."""
        plan = self.plan_from(start)
        needs = request_needs(request)
        if not needs or first_capable(plan, needs) is not None:
            return plan
        step = first_capable(list(self.steps), needs)
        if step is None:
            raise NoCapableDeploymentError(
                self.name, needs, describe_needs(needs), param=param_of(needs)
            )
        return list(self.steps[self.steps.index(step) :])


def first_capable(plan: list[Step], needs: frozenset[str]) -> Step | None:
    """The first step with a deployment that serves `needs`."""
    return next((s for s in plan if any(not d.lacks(needs) for d in s.deployments)), None)


def build_deployments(
    config: GatewayConfig, http: HttpClient, environ: Mapping[str, str] | None = None
) -> dict[str, Deployment]:
    tier_of: dict[str, str] = {}
    for tier, members in config.tiers.items():
        for member in members:
            tier_of.setdefault(member, tier)
    return {
        name: _deployment(dc, tier_of.get(name, name), http, environ)
        for name, dc in config.deployments.items()
    }


def _deployment(
    dc: DeploymentConfig, tier: str, http: HttpClient, environ: Mapping[str, str] | None
) -> Deployment:
    timeouts = Timeouts(dc.timeout.connect_s, dc.timeout.total_s, dc.timeout.first_token_s)
    return Deployment(
        name=dc.name,
        tier=tier,
        model=dc.model,
        provider_kind=dc.provider,
        provider=build_provider(dc, http, environ),
        price=dc.resolved_price(),
        context_window=dc.resolved_context_window(),
        max_output_tokens=dc.resolved_max_output(),
        timeouts=timeouts,
        weight=dc.weight,
        kind=dc.kind,
        capabilities=dc.resolved_capabilities(),
    )


class Targets:
    """Every addressable name: routes, tiers, and deployments."""

    def __init__(self, config: GatewayConfig, deployments: dict[str, Deployment]) -> None:
        self._config, self._deployments = config, deployments
        self._steps, self._embedding_steps = _steps_by_kind(config, deployments)
        self._default = Policy(fallback=config.fallback)
        self._targets: dict[str, Target] = {}
        for name, route in config.routes.items():
            self._targets[name] = self._route(name, route)
        for tier in config.tiers:
            self._targets[tier] = self._tier(tier)
        for name in config.deployments:
            self._targets.setdefault(name, self._direct(name))

    def names(self) -> list[str]:
        return list(self._targets)

    def get(self, name: str) -> Target:
        target = self._targets.get(name)
        if target is None:
            raise RouteNotFoundError(name, self.names())
        return target

    def serve(self, name: str, target: Target) -> None:
        """Resolve `name` to `target` from now on (a learned router swapped in)."""
        self._targets[name] = target

    def _strongest(self) -> Deployment | None:
        tiers = list(self._steps.values())
        return tiers[-1].deployments[0] if tiers and tiers[-1].deployments else None

    def embedding(self, name: str) -> Target:
        """The target of an embeddings request: a tier or deployment of embeddings."""
        target = self.get(name)
        if target.kind != EMBEDDING:
            raise RequestError(f"model {name!r} does not serve embeddings", param="model")
        return target

    def _route(self, name: str, route: RouteConfig) -> Target:
        steps = tuple(self._steps[t] for t in self._chat_tiers(name, route))
        context = BuildContext(self._deployments)
        checks = tuple(
            self._check(f"routes.{name}.checks[{i}]", c, context)
            for i, c in enumerate(route.checks)
        )
        confidence = build_confidence(route.confidence) if route.confidence else None
        policy = Policy(
            fallback=self._config.fallback,
            checks=checks,
            confidence=confidence,
            confidence_threshold=route.confidence.threshold if route.confidence else 0.0,
            return_last_on_checks=route.on_checks_exhausted == "return_last",
        )
        baseline = (
            self._deployments[route.baseline] if route.baseline else (steps[-1].deployments[0])
        )
        with keyed("router", f"routes.{name}.router"):
            router = build_router(route.router, context)
        hold_back = route.stream_hold_back
        if hold_back is None:
            hold_back = CHECKED_HOLD_BACK if policy.judges else 0
        return Target(name, steps, policy, router, baseline, hold_back)

    @staticmethod
    def _check(key: str, config: CheckConfig, context: BuildContext) -> Check:
        with keyed("checks", key):
            return build_check(config, context)

    def _chat_tiers(self, name: str, route: RouteConfig) -> list[str]:
        """The route's tiers; a route serves chat, so `tiers` may not name embeddings."""
        named = [t for t in route.tiers if t in self._embedding_steps]
        if named:
            raise ConfigError(f"{named[0]!r} is a tier of embeddings", key=f"routes.{name}.tiers")
        return [t for t in self._config.tier_order(route) if t in self._steps]

    def _embedding_target(self, name: str, steps: list[Step]) -> Target:
        """No router and no checks; the baseline is the first deployment (no savings)."""
        for step in steps:
            if any(d.kind != EMBEDDING for d in step.deployments):
                key = f"deployments.{name}.fallbacks"
                raise ConfigError(f"{step.tier!r} does not serve embeddings", key=key)
        baseline = steps[0].deployments[0]
        return Target(name, tuple(steps), self._default, None, baseline, kind=EMBEDDING)

    def _tier(self, tier: str) -> Target:
        if tier in self._embedding_steps:
            return self._embedding_target(tier, [self._embedding_steps[tier]])
        order = list(self._steps)
        steps = tuple(self._steps[t] for t in order[order.index(tier) :])
        return Target(tier, steps, self._default, None, self._strongest())

    def _direct(self, name: str) -> Target:
        deployment = self._deployments[name]
        steps = [Step(deployment.tier, (deployment,))]
        for fallback in self._config.deployments[name].fallbacks:
            step = self._steps.get(fallback) or self._embedding_steps.get(fallback)
            steps.append(step or Step(fallback, (self._deployments[fallback],)))
        if deployment.kind == EMBEDDING:
            return self._embedding_target(name, steps)
        baseline = self._strongest() or deployment
        return Target(name, tuple(steps), self._default, None, baseline)


def _steps_by_kind(
    config: GatewayConfig, deployments: dict[str, Deployment]
) -> tuple[dict[str, Step], dict[str, Step]]:
    """The tiers of chat deployments and the tiers of embedding deployments; a tier
    holds one kind."""
    chat: dict[str, Step] = {}
    embedding: dict[str, Step] = {}
    for tier, members in config.tiers.items():
        step = Step(tier, tuple(deployments[m] for m in members))
        kinds = {d.kind for d in step.deployments}
        if len(kinds) > 1:
            raise ConfigError(
                "a tier holds chat or embedding deployments, not both", key=f"tiers.{tier}"
            )
        (embedding if kinds == {EMBEDDING} else chat)[tier] = step
    return chat, embedding
