"""The figures of a report: exact money, counts, latency, satisfaction,
triggers, time buckets and failed requests, each with `to_json`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tierwise.store import from_pusd

LATENCY_CAP = 50_000
ZERO = Decimal(0)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks of a sorted sequence."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(part: float | int | Decimal, whole: float | int | Decimal) -> float | None:
    return float(part) / float(whole) if whole else None


def usd_text(value: Decimal) -> str:
    return f"{value:f}"


@dataclass(frozen=True, slots=True)
class Latency:
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    samples: int = 0

    @classmethod
    def of(cls, mean_ms: float | None, values: Iterable[float]) -> Latency:
        ordered = sorted(values)
        p50, p95, p99 = (percentile(ordered, q) for q in (0.5, 0.95, 0.99))
        return cls(mean_ms, p50, p95, p99, len(ordered))


@dataclass(frozen=True, slots=True)
class Money:
    spend_usd: Decimal = ZERO
    baseline_usd: Decimal = ZERO
    savings_usd: Decimal = ZERO
    router_usd: Decimal = ZERO
    checks_usd: Decimal = ZERO
    exploration_usd: Decimal = ZERO

    @classmethod
    def of(cls, row: dict[str, Any]) -> Money:
        names = ("spend", "baseline", "savings", "router", "checks", "exploration")
        return cls(*(from_pusd(int(row.get(n) or 0)) for n in names))

    def __add__(self, other: Money) -> Money:
        return Money(
            self.spend_usd + other.spend_usd,
            self.baseline_usd + other.baseline_usd,
            self.savings_usd + other.savings_usd,
            self.router_usd + other.router_usd,
            self.checks_usd + other.checks_usd,
            self.exploration_usd + other.exploration_usd,
        )

    @property
    def savings_share(self) -> float | None:
        """Savings as a share of what the baseline model would have cost."""
        return ratio(self.savings_usd, self.baseline_usd)

    @property
    def exploration_share(self) -> float | None:
        """Exploration's part of the spend."""
        return ratio(self.exploration_usd, self.spend_usd)

    def to_json(self) -> dict[str, Any]:
        return {
            "spend_usd": usd_text(self.spend_usd),
            "baseline_usd": usd_text(self.baseline_usd),
            "savings_usd": usd_text(self.savings_usd),
            "savings_share": self.savings_share,
            "router_tax_usd": usd_text(self.router_usd),
            "check_cost_usd": usd_text(self.checks_usd),
            "exploration_cost_usd": usd_text(self.exploration_usd),
            "exploration_share": self.exploration_share,
        }


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int = 0
    errors: int = 0
    degraded: int = 0
    cancelled: int = 0
    fallbacks: int = 0
    escalations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_sum_ms: float = 0.0
    latency_n: int = 0
    first_token_sum_ms: float = 0.0
    first_token_n: int = 0

    @classmethod
    def of(cls, row: dict[str, Any]) -> Counts:
        names = ("n", "errors", "degraded", "cancelled", "fallbacks", "escalations", "tin")
        n, errors, degraded, cancelled, fallbacks, escalations, tin = (
            int(row[f] or 0) for f in names
        )
        return cls(
            n,
            errors,
            degraded,
            cancelled,
            fallbacks,
            escalations,
            tin,
            int(row["tout"] or 0),
            float(row["lat_sum"] or 0.0),
            int(row["lat_n"] or 0),
            float(row["ttft_sum"] or 0.0),
            int(row["ttft_n"] or 0),
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_sum_ms / self.latency_n if self.latency_n else None

    @property
    def mean_first_token_ms(self) -> float | None:
        return self.first_token_sum_ms / self.first_token_n if self.first_token_n else None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "degraded": self.degraded,
            "cancelled": self.cancelled,
            "fallbacks": self.fallbacks,
            "fallback_rate": ratio(self.fallbacks, self.requests),
            "escalations": self.escalations,
            "escalation_rate": ratio(self.escalations, self.requests),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "mean_first_token_ms": self.mean_first_token_ms,
        }


def _fields(counts: Counts) -> list[Any]:
    return [getattr(counts, name) for name in Counts.__dataclass_fields__]


@dataclass(frozen=True, slots=True)
class Satisfaction:
    """Mean feedback score in [0, 1] and how many scores it is made of."""

    total: float = 0.0
    count: int = 0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def __add__(self, other: Satisfaction) -> Satisfaction:
        return Satisfaction(self.total + other.total, self.count + other.count)

    def to_json(self) -> dict[str, Any]:
        return {"satisfaction": self.mean, "feedback_count": self.count}


@dataclass(frozen=True, slots=True)
class Group:
    """Requests of one route that ended on one tier (None: no tier answered)."""

    route: str
    tier: str | None
    counts: Counts
    money: Money
    latency: Latency
    satisfaction: Satisfaction
    share: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "tier": self.tier,
            "share": self.share,
            **self.counts.to_json(),
            **self.money.to_json(),
            "latency": _latency_json(self.latency),
            **self.satisfaction.to_json(),
        }


def _latency_json(latency: Latency) -> dict[str, Any]:
    return {
        "mean_ms": latency.mean_ms,
        "p50_ms": latency.p50_ms,
        "p95_ms": latency.p95_ms,
        "p99_ms": latency.p99_ms,
        "samples": latency.samples,
    }


@dataclass(frozen=True, slots=True)
class TriggerCount:
    """Attempts that ended with `trigger`, split by what came next: another
    deployment of the same tier (fallback), a different tier (escalation), or
    nothing (unrecovered)."""

    trigger: str
    attempts: int
    fallbacks: int
    escalations: int

    @property
    def unrecovered(self) -> int:
        return self.attempts - self.fallbacks - self.escalations

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "attempts": self.attempts,
            "fallbacks": self.fallbacks,
            "escalations": self.escalations,
            "unrecovered": self.unrecovered,
        }


@dataclass(frozen=True, slots=True)
class Bucket:
    start: float
    requests: int
    money: Money

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "requests": self.requests, **self.money.to_json()}


@dataclass(frozen=True, slots=True)
class Attempt:
    seq: int
    deployment: str
    tier: str | None
    called: bool
    outcome: str
    trigger: str | None
    detail: str | None
    status: int | None
    latency_ms: float | None
    cost_usd: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "deployment": self.deployment,
            "tier": self.tier,
            "called": self.called,
            "outcome": self.outcome,
            "trigger": self.trigger,
            "detail": self.detail,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "cost_usd": usd_text(self.cost_usd),
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """A request that errored, degraded or was cancelled; `api_key` is the key's
    name and `prompt` is present only when prompts are captured."""

    request_id: str
    created_at: float
    route: str
    tier: str | None
    status: str
    error: str | None
    latency_ms: float | None
    cost_usd: Decimal
    api_key: str | None
    prompt: str | None
    attempts: list[Attempt] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "created_at": self.created_at,
            "route": self.route,
            "tier": self.tier,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "cost_usd": usd_text(self.cost_usd),
            "api_key": self.api_key,
            "prompt": self.prompt,
            "attempts": [a.to_json() for a in self.attempts],
        }


@dataclass(frozen=True, slots=True)
class Spend:
    """Requests, money and mean latency of one key, team, user, route or model;
    `name` is None for requests without one."""

    name: str | None
    requests: int
    money: Money
    mean_latency_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": self.requests,
            "spend_usd": usd_text(self.money.spend_usd),
            "baseline_usd": usd_text(self.money.baseline_usd),
            "savings_usd": usd_text(self.money.savings_usd),
            "mean_latency_ms": self.mean_latency_ms,
        }


@dataclass(frozen=True, slots=True)
class Report:
    since: float
    until: float
    bucket_s: int
    groups: list[Group]
    triggers: list[TriggerCount]
    buckets: list[Bucket]
    failures: list[Failure]
    latency: Latency
    latency_cap: int = LATENCY_CAP
    spend: dict[str, list[Spend]] = field(default_factory=dict)
    """Spend per key, team, user, route or model, for each grouping asked for."""

    @property
    def counts(self) -> Counts:
        return sum((g.counts for g in self.groups), Counts())

    @property
    def money(self) -> Money:
        return sum((g.money for g in self.groups), Money())

    @property
    def satisfaction(self) -> Satisfaction:
        return sum((g.satisfaction for g in self.groups), Satisfaction())

    def tier_shares(self) -> list[tuple[str | None, int, float | None]]:
        """(tier, requests, share of all requests), busiest first."""
        per: dict[str | None, int] = {}
        for g in self.groups:
            per[g.tier] = per.get(g.tier, 0) + g.counts.requests
        total = sum(per.values())
        rows = [(tier, n, ratio(n, total)) for tier, n in per.items()]
        return sorted(rows, key=lambda r: (-r[1], r[0] or ""))

    def to_json(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "since": self.since,
            "until": self.until,
            "bucket_s": self.bucket_s,
            "totals": {
                **counts.to_json(),
                **self.money.to_json(),
                "latency": _latency_json(self.latency),
                **self.satisfaction.to_json(),
            },
            "groups": [g.to_json() for g in self.groups],
            "tiers": [{"tier": t, "requests": n, "share": s} for t, n, s in self.tier_shares()],
            "triggers": [t.to_json() for t in self.triggers],
            "buckets": [b.to_json() for b in self.buckets],
            "failures": [f.to_json() for f in self.failures],
            "latency_cap": self.latency_cap,
            "spend": {by: [s.to_json() for s in rows] for by, rows in self.spend.items()},
        }
