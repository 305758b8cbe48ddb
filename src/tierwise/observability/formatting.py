"""How report figures read to people: money, shares, durations, times and the
per-group columns shared by the dashboard and `tierwise report`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from tierwise.observability.figures import Group

GROUP_COLUMNS = (
    "requests", "share", "failed", "spend", "savings", "mean", "p50", "p95", "p99",
    "ttft", "fallback-rate", "escalation-rate", "satisfaction", "feedback",
)  # fmt: skip


def slug(name: str | None) -> str:
    """`name` with anything but letters, digits, `_`, `.` and `-` as `_` (test ids)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) if name else "none"


def usd(value: Decimal) -> str:
    """Exact below a dollar, cents above."""
    sign, size = ("-" if value < 0 else ""), abs(value)
    text = f"{size:,.2f}" if size >= 1 else format(size.normalize(), "f")
    return f"{sign}${text}"


def usd_short(value: Decimal) -> str:
    """Cents from a dollar up, four significant digits below, always in plain
    notation (`$0.0123`, `$0.00002812`)."""
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size >= 1 or size == 0:
        return usd(value)
    digits = max(4 - size.adjusted() - 1, 0)
    text = format(size.quantize(Decimal(1).scaleb(-digits)).normalize(), "f")
    return f"{sign}${text}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def rate_of(requests: int) -> Callable[[int], float | None]:
    """A share of `requests`, or None when there were none."""
    return (lambda n: n / requests) if requests else (lambda n: None)


def group_cells(g: Group) -> list[str]:
    """The `GROUP_COLUMNS` of one route and tier."""
    c, lat = g.counts, g.latency
    rate = rate_of(c.requests)
    return [
        str(c.requests), pct(g.share), str(c.errors + c.degraded + c.cancelled),
        usd(g.money.spend_usd), usd(g.money.savings_usd), ms(lat.mean_ms), ms(lat.p50_ms),
        ms(lat.p95_ms), ms(lat.p99_ms), ms(c.mean_first_token_ms), pct(rate(c.fallbacks)),
        pct(rate(c.escalations)), pct(g.satisfaction.mean), str(g.satisfaction.count),
    ]  # fmt: skip
