"""What the request log says about a time range: traffic, money, latency,
fallbacks, escalations, satisfaction and recent failures.

Only portable SQL aggregates run in the store; percentiles and time buckets
are finished in Python. Money stays exact (`Decimal` from pico-dollars).
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Any

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
    TriggerCount,
    ratio,
)
from tierwise.store import Store, from_pusd

__all__ = ["Report", "auto_bucket", "parse_since", "redact", "summarize"]

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


RANGE = "r.created_at >= ? AND r.created_at < ?"
MONEY_SUMS = (
    "SUM(r.cost_pusd) AS spend, SUM(r.baseline_pusd) AS baseline, "
    "SUM(r.savings_pusd) AS savings, SUM(r.router_pusd) AS router, "
    "SUM(r.checks_pusd) AS checks"
)
GROUPS_SQL = f"""SELECT r.route AS route, r.final_tier AS tier, COUNT(*) AS n,
    SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END) AS errors,
    SUM(CASE WHEN r.status = 'degraded' THEN 1 ELSE 0 END) AS degraded,
    SUM(CASE WHEN r.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
    SUM(CASE WHEN r.calls > 1 THEN 1 ELSE 0 END) AS fallbacks,
    SUM(r.escalated) AS escalations,
    SUM(r.input_tokens) AS tin, SUM(r.output_tokens) AS tout,
    SUM(r.latency_ms) AS lat_sum, COUNT(r.latency_ms) AS lat_n,
    SUM(r.first_token_ms) AS ttft_sum, COUNT(r.first_token_ms) AS ttft_n,
    {MONEY_SUMS}
    FROM requests r WHERE {RANGE} GROUP BY r.route, r.final_tier"""
LATENCY_SQL = f"""SELECT r.route AS route, r.final_tier AS tier, r.latency_ms AS ms
    FROM requests r WHERE {RANGE} AND r.latency_ms IS NOT NULL
    ORDER BY r.created_at DESC LIMIT ?"""
FEEDBACK_SQL = f"""SELECT r.route AS route, r.final_tier AS tier, COUNT(*) AS n,
    SUM(f.score) AS total
    FROM feedback f JOIN requests r ON r.request_id = f.request_id
    WHERE {RANGE} GROUP BY r.route, r.final_tier"""
TRIGGERS_SQL = f"""SELECT a.trigger AS trigger, COUNT(*) AS n,
    SUM(CASE WHEN b.seq IS NOT NULL AND COALESCE(b.tier, '') = COALESCE(a.tier, '')
        THEN 1 ELSE 0 END) AS fallbacks,
    SUM(CASE WHEN b.seq IS NOT NULL AND COALESCE(b.tier, '') <> COALESCE(a.tier, '')
        THEN 1 ELSE 0 END) AS escalations
    FROM attempts a JOIN requests r ON r.request_id = a.request_id
    LEFT JOIN attempts b ON b.request_id = a.request_id AND b.seq = a.seq + 1
    WHERE {RANGE} AND a.trigger IS NOT NULL GROUP BY a.trigger"""
BUCKET_EXPR = (
    "CAST((r.created_at - ?) / ? AS INTEGER) - CASE WHEN "
    "CAST((r.created_at - ?) / ? AS INTEGER) > (r.created_at - ?) / ? THEN 1 ELSE 0 END"
)
BUCKETS_SQL = f"""SELECT t.bucket AS bucket, COUNT(*) AS n,
    SUM(t.cost_pusd) AS spend, SUM(t.baseline_pusd) AS baseline,
    SUM(t.savings_pusd) AS savings, SUM(t.router_pusd) AS router,
    SUM(t.checks_pusd) AS checks
    FROM (SELECT {BUCKET_EXPR} AS bucket, r.cost_pusd, r.baseline_pusd, r.savings_pusd,
        r.router_pusd, r.checks_pusd FROM requests r WHERE {RANGE}) t
    GROUP BY t.bucket"""
FAILURES_SQL = f"""SELECT r.request_id, r.created_at, r.route, r.final_tier, r.status,
    r.error, r.latency_ms, r.cost_pusd, r.api_key, r.prompt
    FROM requests r WHERE {RANGE} AND r.status IN ('error', 'degraded', 'cancelled')
    ORDER BY r.created_at DESC LIMIT ?"""
ATTEMPTS_SQL = """SELECT request_id, seq, deployment, tier, called, outcome, trigger, detail,
    status, latency_ms, cost_pusd FROM attempts WHERE request_id IN ({marks})
    ORDER BY request_id, seq"""

Key = tuple[str, str | None]


async def summarize(
    store: Store,
    since: float,
    until: float | None = None,
    bucket_s: int | None = None,
    *,
    failures: int = 20,
    latency_cap: int = LATENCY_CAP,
) -> Report:
    """Everything the request log holds about requests started in [since, until)."""
    until = time.time() if until is None else until
    span = max(until - since, 1.0)
    step = bucket_s or auto_bucket(span)
    step = max(step, math.ceil(span / MAX_BUCKETS))
    window = (float(since), float(until))
    latencies = await store.query(LATENCY_SQL, (*window, latency_cap))
    groups = await _groups(store, window, latencies)
    return Report(
        since=window[0],
        until=window[1],
        bucket_s=step,
        groups=groups,
        triggers=await _triggers(store, window),
        buckets=await _buckets(store, window, step),
        failures=await _failures(store, window, failures),
        latency=_overall_latency(groups, latencies),
        latency_cap=latency_cap,
    )


async def _groups(
    store: Store, window: tuple[float, float], latencies: list[dict[str, Any]]
) -> list[Group]:
    rows = await store.query(GROUPS_SQL, window)
    scores = {
        (r["route"], r["tier"]): Satisfaction(float(r["total"] or 0.0), int(r["n"]))
        for r in await store.query(FEEDBACK_SQL, window)
    }
    samples: dict[Key, list[float]] = {}
    for row in latencies:
        samples.setdefault((row["route"], row["tier"]), []).append(float(row["ms"]))
    total = sum(int(r["n"]) for r in rows)
    groups = []
    for row in rows:
        key: Key = (row["route"], row["tier"])
        counts = Counts.of(row)
        groups.append(
            Group(
                route=key[0],
                tier=key[1],
                counts=counts,
                money=Money.of(row),
                latency=Latency.of(counts.mean_latency_ms, samples.get(key, ())),
                satisfaction=scores.get(key, Satisfaction()),
                share=ratio(counts.requests, total),
            )
        )
    return sorted(groups, key=lambda g: (g.route, g.tier is None, g.tier or ""))


def _overall_latency(groups: list[Group], latencies: list[dict[str, Any]]) -> Latency:
    counts = sum((g.counts for g in groups), Counts())
    return Latency.of(counts.mean_latency_ms, (float(r["ms"]) for r in latencies))


async def _triggers(store: Store, window: tuple[float, float]) -> list[TriggerCount]:
    rows = await store.query(TRIGGERS_SQL, window)
    found = [
        TriggerCount(r["trigger"], int(r["n"]), int(r["fallbacks"]), int(r["escalations"]))
        for r in rows
    ]
    return sorted(found, key=lambda t: (-t.attempts, t.trigger))


async def _buckets(store: Store, window: tuple[float, float], step: int) -> list[Bucket]:
    since, until = window
    params = (since, float(step)) * 3 + window
    found = {int(r["bucket"]): r for r in await store.query(BUCKETS_SQL, params)}
    count = max(math.ceil(round((until - since) / step, 6)), 1)
    buckets = []
    for index in range(count):
        row = found.get(index)
        money = Money.of(row) if row else Money()
        buckets.append(Bucket(since + index * step, int(row["n"]) if row else 0, money))
    return buckets


async def _failures(store: Store, window: tuple[float, float], limit: int) -> list[Failure]:
    if limit <= 0:
        return []
    rows = await store.query(FAILURES_SQL, (*window, limit))
    if not rows:
        return []
    marks = ", ".join("?" for _ in rows)
    ids = [r["request_id"] for r in rows]
    attempts: dict[str, list[Attempt]] = {}
    for a in await store.query(ATTEMPTS_SQL.format(marks=marks), ids):
        attempts.setdefault(a["request_id"], []).append(_attempt(a))
    return [_failure(r, attempts.get(r["request_id"], [])) for r in rows]


def _attempt(row: dict[str, Any]) -> Attempt:
    return Attempt(
        seq=int(row["seq"]),
        deployment=row["deployment"],
        tier=row["tier"],
        called=bool(row["called"]),
        outcome=row["outcome"],
        trigger=row["trigger"],
        detail=redact(row["detail"]),
        status=row["status"],
        latency_ms=row["latency_ms"],
        cost_usd=from_pusd(int(row["cost_pusd"] or 0)),
    )


def _failure(row: dict[str, Any], attempts: list[Attempt]) -> Failure:
    return Failure(
        request_id=row["request_id"],
        created_at=float(row["created_at"]),
        route=row["route"],
        tier=row["final_tier"],
        status=row["status"],
        error=redact(row["error"]),
        latency_ms=row["latency_ms"],
        cost_usd=from_pusd(int(row["cost_pusd"] or 0)),
        api_key=row["api_key"],
        prompt=row["prompt"],
        attempts=attempts,
    )
