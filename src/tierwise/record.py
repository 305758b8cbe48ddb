"""What happened to one request: the decision, every attempt, and the bill."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tierwise.types import Usage

ZERO = Decimal(0)


@dataclass(slots=True, frozen=True)
class CheckResult:
    name: str
    passed: bool
    reason: str = ""
    cost_usd: Decimal = ZERO


@dataclass(slots=True)
class AttemptRecord:
    """One planned step: `called` is False when it was skipped before any call."""

    deployment: str
    tier: str
    model: str
    provider: str
    called: bool = True
    outcome: str = "ok"
    trigger: str | None = None
    detail: str = ""
    status: int | None = None
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    usage: Usage | None = None
    cost_usd: Decimal = ZERO
    checks: list[CheckResult] = field(default_factory=list)
    confidence: float | None = None
    retry_after_s: float | None = None

    @property
    def check_cost_usd(self) -> Decimal:
        return sum((c.cost_usd for c in self.checks), ZERO)


@dataclass(slots=True, frozen=True)
class Decision:
    """A router's choice: the tier (or deployment) to start from, and why."""

    target: str
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    router: str = ""
    cost_usd: Decimal = ZERO
    latency_ms: float = 0.0
    usage: Usage | None = None
    confident: bool = True
    propensity: float = 1.0
    """The probability that this target was chosen for this request (1.0 for a
    deterministic router); replay weights logged outcomes by its inverse."""
    explored: bool = False
    """The target was drawn by exploration (or is a shadow call), not by the router."""


@dataclass(slots=True, frozen=True)
class CostBreakdown:
    attempts_usd: Decimal = ZERO
    checks_usd: Decimal = ZERO
    router_usd: Decimal = ZERO
    baseline_usd: Decimal = ZERO
    exploration_usd: Decimal = ZERO
    """The part of the total that exploration caused (an explored request, or a
    shadow call and its judge, in full); included in `total_usd`, not added to it."""

    @property
    def total_usd(self) -> Decimal:
        return self.attempts_usd + self.checks_usd + self.router_usd

    @property
    def savings_usd(self) -> Decimal:
        return self.baseline_usd - self.total_usd


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    route: str
    decision: Decision | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    status: str = "ok"
    final_deployment: str | None = None
    final_tier: str | None = None
    cost: CostBreakdown = CostBreakdown()
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    started_at: float = 0.0
    error: str | None = None
    user: str | None = None
    api_key: str | None = None
    team: str | None = None
    """The team of the API key the request came with (config or virtual), as it
    was when the request was authenticated; None without a key or a team."""
    variant: str | None = None
    experiment: str | None = None
    unit_key: str | None = None
    prompt: str | None = None
    answer: str | None = None
    prompt_sketch: list[float] | None = None
    client_request_id: str | None = None
    checked: str = "none"
    """How much of the answer the route's checks judged: `complete`, `prefix` (a
    stream that committed before its end), or `none` (the route has no checks)."""
    cache: str | None = None
    """The response cache's answer: `hit` (served from it, billed nothing), `miss`,
    or None when the route has no cache."""

    @property
    def calls(self) -> list[AttemptRecord]:
        return [a for a in self.attempts if a.called]

    @property
    def escalated(self) -> bool:
        tiers = [a.tier for a in self.calls]
        return len(set(tiers)) > 1
