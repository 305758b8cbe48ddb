"""What the request log says about a time range: traffic, money, latency,
fallbacks, escalations, satisfaction and recent failures.

Only portable SQL aggregates run in the store; percentiles and time buckets
are finished in Python. Money stays exact (`Decimal` from pico-dollars).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from tierwise.observability.figures import (
    LATENCY_CAP,
    Attempt,
    Bucket,
    Counts,
    Failure,
    Group,
    Latency,
    Money,
    Report,
    Satisfaction,
    Spend,
    TriggerCount,
    ratio,
)
from tierwise.store import Store, from_pusd
from tierwise.store.reports import (
    EVERYTHING,
    AttemptSummary,
    FailedRequest,
    LatencySample,
    RequestFilter,
)

__all__ = ["GROUPINGS", "Report", "auto_bucket", "parse_since", "redact", "spend_by", "summarize"]

GROUPINGS = ("key", "team", "user", "route", "model")
NO_TEAM = "(no team)"

BUCKET_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 1000
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
SECRETS = re.compile(
    r"(?i)\b(?:sk|pk|rk|key|token)-[A-Za-z0-9_*.-]{3,}[A-Za-z0-9_*]|\bbearer\s+\S+"
)


EARLIEST_S, LATEST_S = 0.0, 221_845_392_000.0


def parse_since(text: str, now: float) -> float:
    """`30m`, `24h`, `7d`, `2w`, `90s`, or an ISO date/time (UTC unless it says
    otherwise), as unix seconds; raises ValueError."""
    value = text.strip().lower()
    match = RELATIVE.match(value)
    if match:
        moment_s = now - float(match.group(1)) * UNITS[match.group(2)]
    else:
        try:
            parsed = datetime.fromisoformat(text.strip())
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            moment_s = parsed.timestamp()
        except (ValueError, OverflowError):
            raise ValueError(
                f"cannot read {text!r} as a time: use e.g. 30m, 24h, 7d, 2w or 2024-05-01"
            ) from None
    if not EARLIEST_S <= moment_s <= LATEST_S:
        raise ValueError(f"{text!r} is outside the years 1970 to 9000")
    return moment_s


def redact(text: str | None) -> str | None:
    """Key- and token-shaped substrings replaced, for upstream error details."""
    return None if text is None else SECRETS.sub("[REDACTED]", text)


def auto_bucket(span_s: float) -> int:
    """The smallest step giving at most ~60 buckets over `span_s`."""
    for step in BUCKET_STEPS:
        if span_s / step <= 60:
            return step
    return max(BUCKET_STEPS[-1], math.ceil(span_s / 60))


Key = tuple[str, str | None]


async def summarize(
    store: Store,
    since: float,
    until: float | None = None,
    bucket_s: int | None = None,
    *,
    failures: int = 20,
    latency_cap: int = LATENCY_CAP,
    where: RequestFilter = EVERYTHING,
    by: Sequence[str] = ("route",),
    teams: Mapping[str, str | None] | None = None,
) -> Report:
    """Everything the request log holds about requests started in [since, until)
    that match `where`, with spend grouped `by` each of the `GROUPINGS` given
    (`teams` maps API key names to their team, for requests logged without one)."""
    until = time.time() if until is None else until
    span = max(until - since, 1.0)
    step = bucket_s or auto_bucket(span)
    step = max(step, math.ceil(span / MAX_BUCKETS))
    window = (float(since), float(until))
    latencies = await store.report_latencies(*window, latency_cap, where)
    groups = await _groups(store, window, latencies, where)
    return Report(
        since=window[0],
        until=window[1],
        bucket_s=step,
        groups=groups,
        triggers=await _triggers(store, window, where),
        buckets=await _buckets(store, window, step, where),
        failures=await _failures(store, window, failures, where),
        latency=_overall_latency(groups, latencies),
        latency_cap=latency_cap,
        spend={b: await spend_by(store, window, b, teams or {}, where) for b in by},
    )


async def spend_by(
    store: Store,
    window: tuple[float, float],
    by: str,
    teams: Mapping[str, str | None],
    where: RequestFilter = EVERYTHING,
) -> list[Spend]:
    """Spend per key, team, user, route or model, biggest spend first. A team is
    the team logged with each request; a request logged without one (before teams
    were logged, or made with a key without a team) counts for its key's team in
    `teams`, else for `NO_TEAM`."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group spend by {by!r}: use one of {', '.join(GROUPINGS)}")
    rows = await store.report_spend(*window, by, where)
    merged: dict[str | None, list[float]] = {}
    for row in rows:
        name = row["name"]
        if by == "team":
            name = name or teams.get(row["unteamed"] or "") or NO_TEAM
        totals = merged.setdefault(name, [0, 0, 0, 0, 0.0, 0])
        values = (row["n"], row["spend"], row["baseline"], row["savings"])
        for i, value in enumerate((*values, row["lat_sum"], row["lat_n"])):
            totals[i] += value
    found = [_spend(name, totals) for name, totals in merged.items()]
    return sorted(found, key=lambda s: (-s.money.spend_usd, -s.requests, s.name or ""))


def _spend(name: str | None, totals: list[float]) -> Spend:
    n, spend, baseline, savings, lat_sum, lat_n = totals
    money = Money(from_pusd(int(spend)), from_pusd(int(baseline)), from_pusd(int(savings)))
    return Spend(name, int(n), money, lat_sum / lat_n if lat_n else None)


async def _groups(
    store: Store,
    window: tuple[float, float],
    latencies: list[LatencySample],
    where: RequestFilter = EVERYTHING,
) -> list[Group]:
    rows = await store.report_groups(*window, where)
    scores = {
        (r["route"], r["tier"]): Satisfaction(r["total"], r["n"])
        for r in await store.report_feedback(*window, where)
    }
    samples: dict[Key, list[float]] = {}
    for sample in latencies:
        samples.setdefault((sample["route"], sample["tier"]), []).append(sample["ms"])
    total = sum(r["n"] for r in rows)
    groups = []
    for row in rows:
        key: Key = (row["route"], row["tier"])
        counts = Counts.of(dict(row))
        groups.append(
            Group(
                route=key[0],
                tier=key[1],
                counts=counts,
                money=Money.of(dict(row)),
                latency=Latency.of(counts.mean_latency_ms, samples.get(key, ())),
                satisfaction=scores.get(key, Satisfaction()),
                share=ratio(counts.requests, total),
            )
        )
    return sorted(groups, key=lambda g: (g.route, g.tier is None, g.tier or ""))


def _overall_latency(groups: list[Group], latencies: list[LatencySample]) -> Latency:
    counts = sum((g.counts for g in groups), Counts())
    return Latency.of(counts.mean_latency_ms, (r["ms"] for r in latencies))


async def _triggers(
    store: Store, window: tuple[float, float], where: RequestFilter = EVERYTHING
) -> list[TriggerCount]:
    found = [
        TriggerCount(r["trigger"], r["n"], r["fallbacks"], r["escalations"])
        for r in await store.report_triggers(*window, where)
    ]
    return sorted(found, key=lambda t: (-t.attempts, t.trigger))


async def _buckets(
    store: Store, window: tuple[float, float], step: int, where: RequestFilter = EVERYTHING
) -> list[Bucket]:
    since, until = window
    found = {r["bucket"]: r for r in await store.report_buckets(since, until, step, where)}
    count = max(math.ceil(round((until - since) / step, 6)), 1)
    buckets = []
    for index in range(count):
        row = found.get(index)
        money = Money.of(dict(row)) if row else Money()
        buckets.append(Bucket(since + index * step, row["n"] if row else 0, money))
    return buckets


async def _failures(
    store: Store, window: tuple[float, float], limit: int, where: RequestFilter = EVERYTHING
) -> list[Failure]:
    if limit <= 0:
        return []
    rows = await store.report_failures(*window, limit, where)
    attempts: dict[str, list[Attempt]] = {}
    for a in await store.attempts_of([r["request_id"] for r in rows]):
        attempts.setdefault(a["request_id"], []).append(_attempt(a))
    return [_failure(r, attempts.get(r["request_id"], [])) for r in rows]


def _attempt(row: AttemptSummary) -> Attempt:
    return Attempt(
        seq=row["seq"],
        deployment=row["deployment"],
        tier=row["tier"],
        called=row["called"],
        outcome=row["outcome"],
        trigger=row["trigger"],
        detail=redact(row["detail"]),
        status=row["status"],
        latency_ms=row["latency_ms"],
        cost_usd=from_pusd(row["cost_pusd"]),
    )


def _failure(row: FailedRequest, attempts: list[Attempt]) -> Failure:
    return Failure(
        request_id=row["request_id"],
        created_at=row["created_at"],
        route=row["route"],
        tier=row["final_tier"],
        status=row["status"],
        error=redact(row["error"]),
        latency_ms=row["latency_ms"],
        cost_usd=from_pusd(row["cost_pusd"]),
        api_key=row["api_key"],
        prompt=row["prompt"],
        attempts=attempts,
    )
