"""Prometheus metrics fed from request records, off the request path's logic.

Label values come only from configured names (routes, tiers, deployments,
teams of configured and virtual API keys, which operators set) and closed sets
(statuses, triggers), so cardinality stays bounded: no label names a user or an
API key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tierwise.record import RequestRecord
from tierwise.state.base import HealthState


@runtime_checkable
class RedisStatus(Protocol):
    """A shared-state object kept in Redis, saying how its connection is doing
    (`tierwise.state.redis.RedisBacked`)."""

    @property
    def redis_available(self) -> bool: ...

    @property
    def redis_failures(self) -> int: ...


LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
ROUTER_BUCKETS = (0.00001, 0.0001, 0.001, 0.005, 0.01, 0.05, 0.25, 1, 5)
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class Metrics:
    """One registry per gateway process; `observe` is a record sink."""

    def __init__(self, teams: Mapping[str, str | None] | None = None) -> None:
        """A request counts for the team logged on its record; `teams` maps API key
        names to their team for records that carry none (team `none` otherwise)."""
        self.teams = dict(teams or {})
        self.registry = CollectorRegistry(auto_describe=False)
        self._traffic(self.registry)
        self._money(self.registry)
        self._timing(self.registry)
        self._teams(self.registry)

    def _teams(self, r: CollectorRegistry) -> None:
        labels = ["route", "model", "team"]
        self.team_requests = Counter(
            "tierwise_team_requests", "Requests by route, model and team.", labels, registry=r
        )
        self.team_spend = Counter(
            "tierwise_team_spend_usd", "Spend in USD by route, model and team.", labels, registry=r
        )
        self.team_savings = Gauge(
            "tierwise_team_savings_usd",
            "Baseline minus spend by route, model and team, cumulative.",
            labels,
            registry=r,
        )

    def _observe_team(self, record: RequestRecord, model: str) -> None:
        team = record.team or self.teams.get(record.api_key or "") or "none"
        labels = (record.route, model, team)
        self.team_requests.labels(*labels).inc()
        self.team_spend.labels(*labels).inc(float(record.cost.total_usd))
        self.team_savings.labels(*labels).inc(float(record.cost.savings_usd))

    def _traffic(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "tierwise_requests",
            "Requests by outcome.",
            ["route", "tier", "model", "status"],
            registry=r,
        )
        self.errors = Counter(
            "tierwise_errors", "Failed attempts by error kind.", ["route", "kind"], registry=r
        )
        self.attempts = Counter(
            "tierwise_attempts",
            "Attempts (calls and skips).",
            ["route", "tier", "model", "provider", "outcome", "trigger"],
            registry=r,
        )
        self.fallbacks = Counter(
            "tierwise_fallbacks",
            "Requests that needed another attempt, by the trigger that ended the first.",
            ["route", "trigger"],
            registry=r,
        )
        self.escalations = Counter(
            "tierwise_escalations",
            "Requests answered by a tier above the routed one.",
            ["route", "from_tier", "to_tier"],
            registry=r,
        )
        self.variants = Counter(
            "tierwise_experiment_requests",
            "Requests counted in an experiment, by variant.",
            ["experiment", "variant"],
            registry=r,
        )
        self.variant_cost = Counter(
            "tierwise_experiment_cost_usd",
            "Cost of the requests counted in an experiment, by variant.",
            ["experiment", "variant"],
            registry=r,
        )
        self.tokens = Counter(
            "tierwise_tokens",
            "Tokens by direction.",
            ["route", "tier", "model", "direction"],
            registry=r,
        )
        self.breaker = Gauge(
            "tierwise_breaker_state", "0 closed, 1 half-open, 2 open.", ["deployment"], registry=r
        )
        self.redis_up = Gauge(
            "tierwise_state_redis_up",
            "1 while shared state reaches Redis.",
            ["component"],
            registry=r,
        )
        self.redis_failures = Gauge(
            "tierwise_state_redis_failures",
            "Redis calls that failed, since start.",
            ["component"],
            registry=r,
        )
        self.feedback = Counter(
            "tierwise_feedback", "Feedback received.", ["route", "tier"], registry=r
        )
        self.cache = Counter(
            "tierwise_cache_requests",
            "Requests on routes with a response cache, by result (hit or miss).",
            ["route", "result"],
            registry=r,
        )
        self.feedback_score = Counter(
            "tierwise_feedback_score",
            "Sum of feedback scores in [0, 1].",
            ["route", "tier"],
            registry=r,
        )

    def _money(self, r: CollectorRegistry) -> None:
        self.cost = Counter(
            "tierwise_cost_usd",
            "Spend in USD by component.",
            ["route", "tier", "model", "component"],
            registry=r,
        )
        self.baseline = Counter(
            "tierwise_baseline_usd", "Cost on the baseline model.", ["route"], registry=r
        )
        self.exploration = Counter(
            "tierwise_exploration_cost_usd",
            "Spend caused by exploration (explored requests, shadow calls and their judge); "
            "part of tierwise_cost_usd, not added to it.",
            ["route"],
            registry=r,
        )
        self.explored = Counter(
            "tierwise_explored_requests",
            "Explored requests and shadow calls.",
            ["route", "router"],
            registry=r,
        )
        self.savings = Gauge(
            "tierwise_savings_usd",
            "Baseline minus spend, cumulative "
            "(goes down when routing costs more than the baseline).",
            ["route"],
            registry=r,
        )

    def _timing(self, r: CollectorRegistry) -> None:
        self.latency = Histogram(
            "tierwise_request_latency_seconds",
            "Request latency.",
            ["route", "tier"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "tierwise_time_to_first_token_seconds",
            "Time to the first streamed token.",
            ["route", "tier"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.router_latency = Histogram(
            "tierwise_router_decision_seconds",
            "Router decision latency.",
            ["route", "router"],
            buckets=ROUTER_BUCKETS,
            registry=r,
        )

    def observe(self, record: RequestRecord) -> None:
        route, tier = record.route, record.final_tier or "none"
        model = record.final_deployment or "none"
        self.requests.labels(route, tier, model, record.status).inc()
        self._observe_team(record, model)
        if record.cache is not None:
            self.cache.labels(route, record.cache).inc()
        self._attempts(record)
        cost = record.cost
        for component, amount in (
            ("attempts", cost.attempts_usd),
            ("checks", cost.checks_usd),
            ("router", cost.router_usd),
        ):
            if amount:
                self.cost.labels(route, tier, model, component).inc(float(amount))
        if cost.baseline_usd:
            self.baseline.labels(route).inc(float(cost.baseline_usd))
        if record.decision is not None and record.decision.explored:
            self.explored.labels(route, record.decision.router).inc()
            self.exploration.labels(route).inc(float(cost.exploration_usd))
        self.savings.labels(route).inc(float(cost.savings_usd))
        self.latency.labels(route, tier).observe(record.latency_ms / 1000)
        if record.first_token_ms is not None:
            self.first_token.labels(route, tier).observe(record.first_token_ms / 1000)
        if record.decision is not None:
            self.router_latency.labels(route, record.decision.router).observe(
                record.decision.latency_ms / 1000
            )
        if record.experiment is not None:
            arm = (record.experiment, record.variant or "none")
            self.variants.labels(*arm).inc()
            self.variant_cost.labels(*arm).inc(float(cost.total_usd))

    def _attempts(self, record: RequestRecord) -> None:
        route = record.route
        for a in record.attempts:
            trigger = a.trigger or "none"
            self.attempts.labels(route, a.tier, a.deployment, a.provider, a.outcome, trigger).inc()
            if a.outcome == "error" and a.trigger:
                self.errors.labels(route, a.trigger).inc()
            if a.usage is not None:
                self.tokens.labels(route, a.tier, a.deployment, "input").inc(a.usage.input_tokens)
                self.tokens.labels(route, a.tier, a.deployment, "output").inc(a.usage.output_tokens)
        first = record.attempts[0] if record.attempts else None
        if first is not None and len(record.attempts) > 1 and first.trigger:
            self.fallbacks.labels(route, first.trigger).inc()
        if record.decision is not None and record.final_tier and record.escalated:
            self.escalations.labels(route, record.decision.target, record.final_tier).inc()

    def observe_feedback(self, route: str, tier: str | None, score: float) -> None:
        self.feedback.labels(route, tier or "none").inc()
        self.feedback_score.labels(route, tier or "none").inc(score)

    async def render(
        self,
        health: HealthState,
        deployments: Iterable[str],
        now: float,
        shared: Iterable[tuple[str, object]] = (),
    ) -> bytes:
        """The exposition text, with breaker states and Redis health read at scrape
        time; `shared` pairs a component name with its state object."""
        for name in deployments:
            state = (await health.health(name, now)).state
            self.breaker.labels(name).set(BREAKER_VALUES.get(state, 0.0))
        for component, part in shared:
            if isinstance(part, RedisStatus):
                self.redis_up.labels(component).set(1.0 if part.redis_available else 0.0)
                self.redis_failures.labels(component).set(part.redis_failures)
        return generate_latest(self.registry)
