"""What the dashboard page shows, computed from a report: key figures, chart
rows, table cells. The templates lay these out and compute nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from tierwise.observability.figures import Group, Report, Spend, TriggerCount
from tierwise.observability.formatting import (
    GROUP_COLUMNS,
    group_cells,
    ms,
    pct,
    rate_of,
    slug,
    usd,
    when,
)
from tierwise.server.dashboard.charts import (
    BarChart,
    Column,
    ColumnChart,
    Row,
    Segment,
    bars,
    money_columns,
)
from tierwise.server.dashboard.experiments import CalibrationView, ExperimentView

RANGES = ("1h", "24h", "7d", "30d")


@dataclass(frozen=True, slots=True)
class Kpi:
    testid: str
    value: str
    label: str
    exact: str | None = None


@dataclass(frozen=True, slots=True)
class Cell:
    testid: str
    text: str


@dataclass(frozen=True, slots=True)
class GroupRow:
    testid: str
    route: str
    tier: str
    cells: list[Cell]


SPEND_COLUMNS = ("requests", "spend", "savings", "mean latency")


@dataclass(frozen=True, slots=True)
class SpendTable:
    """Spend per team or per key: `rows` are (name, cells)."""

    by: str
    testid: str
    rows: list[tuple[str, list[Cell]]]
    columns: tuple[str, ...] = SPEND_COLUMNS


@dataclass(frozen=True, slots=True)
class Page:
    """Everything the dashboard template lays out."""

    report: Report
    since_text: str
    signed_in: bool
    kpis: list[Kpi]
    spend_step: str
    spend: ColumnChart | None
    tiers: BarChart | None
    triggers: BarChart | None
    latency: BarChart | None
    satisfaction: BarChart | None
    columns: tuple[str, ...]
    groups: list[GroupRow]
    experiments: list[ExperimentView] | None = None
    calibrations: list[CalibrationView] | None = None
    spend_tables: list[SpendTable] = field(default_factory=list)

    @property
    def range_text(self) -> str:
        return f"{when(self.report.since)} to {when(self.report.until)}"


def page(
    report: Report,
    since_text: str,
    signed_in: bool,
    experiments: list[ExperimentView] | None = None,
    calibrations: list[CalibrationView] | None = None,
) -> Page:
    """The page for `report`; experiments and threshold changes when given."""
    return Page(
        report,
        since_text,
        signed_in,
        kpis(report),
        spend_step(report.bucket_s),
        spend_chart(report),
        tier_chart(report),
        trigger_chart(report),
        latency_chart(report),
        satisfaction_chart(report),
        GROUP_COLUMNS,
        group_rows(report),
        experiments,
        calibrations,
        [spend_table(by, rows) for by, rows in report.spend.items()],
    )


def spend_table(by: str, rows: list[Spend]) -> SpendTable:
    out = []
    for s in rows:
        name = s.name or "(none)"
        texts = (str(s.requests), usd(s.money.spend_usd), usd(s.money.savings_usd))
        values = (*texts, ms(s.mean_latency_ms))
        prefix = f"spend-{by}-{slug(name)}"
        cells = [Cell(f"{prefix}-{slug(c)}", t) for c, t in zip(SPEND_COLUMNS, values, strict=True)]
        out.append((name, cells))
    return SpendTable(by, f"table-spend-{by}", out)


def kpis(report: Report) -> list[Kpi]:
    c, m, s = report.counts, report.money, report.satisfaction
    rate = rate_of(c.requests)
    return [
        Kpi("kpi-requests", str(c.requests), "requests"),
        Kpi("kpi-errors", str(c.errors), "errors"),
        Kpi("kpi-degraded", str(c.degraded), "degraded"),
        Kpi("kpi-spend", usd(m.spend_usd), "spend", f"{m.spend_usd:f}"),
        Kpi("kpi-baseline", usd(m.baseline_usd), "baseline cost", f"{m.baseline_usd:f}"),
        Kpi("kpi-savings", usd(m.savings_usd), "savings", f"{m.savings_usd:f}"),
        Kpi("kpi-savings-share", pct(m.savings_share), "saved vs baseline"),
        Kpi("kpi-router-tax", usd(m.router_usd), "router tax", f"{m.router_usd:f}"),
        Kpi("kpi-check-cost", usd(m.checks_usd), "check cost", f"{m.checks_usd:f}"),
        Kpi("kpi-fallback-rate", pct(rate(c.fallbacks)), "requests with >1 call"),
        Kpi("kpi-escalation-rate", pct(rate(c.escalations)), "requests escalated"),
        Kpi("kpi-p95", ms(report.latency.p95_ms), "p95 latency"),
        Kpi("kpi-satisfaction", pct(s.mean), f"satisfaction ({s.count} scores)"),
    ]


def spend_step(bucket_s: int) -> str:
    return f"{bucket_s // 60} min" if bucket_s < 86400 else f"{bucket_s // 86400} d"


def spend_chart(report: Report) -> ColumnChart | None:
    columns = [
        Column(
            b.start,
            float(b.money.spend_usd),
            float(b.money.router_usd),
            float(b.money.savings_usd),
            f"{when(b.start)}: {b.requests} requests, spend {usd(b.money.spend_usd)} "
            f"(router tax {usd(b.money.router_usd)}), savings {usd(b.money.savings_usd)}",
        )
        for b in report.buckets
    ]
    return money_columns(columns, report.bucket_s, "spend and savings over time", "chart-spend")


def tier_chart(report: Report) -> BarChart | None:
    rows = [
        Row(
            tier or "(none answered)",
            [Segment(share or 0.0, "share", f"{tier or 'none'}: {n} requests", None)],
            f"{pct(share)} ({n})",
            f"tier-share-{slug(tier)}",
        )
        for tier, n, share in report.tier_shares()
    ]
    return bars(rows, "share of traffic per tier", scale=1.0)


def trigger_chart(report: Report) -> BarChart | None:
    rows = [_trigger_row(t, report.counts.requests) for t in report.triggers]
    return bars(rows, "fallbacks and escalations by trigger")


def _trigger_row(t: TriggerCount, total: int) -> Row:
    name, rate = slug(t.trigger), rate_of(total)
    parts = [
        (t.fallbacks, "fallback", "fallbacks"),
        (t.escalations, "escalation", "escalations"),
        (t.unrecovered, "unrecovered", "unrecovered"),
    ]
    segments = [Segment(n, css, f"{n} {what}", f"trigger-{name}-{what}") for n, css, what in parts]
    note = (
        f"{t.fallbacks} fb ({pct(rate(t.fallbacks))}) / "
        f"{t.escalations} esc ({pct(rate(t.escalations))}) / {t.unrecovered} unrec."
    )
    return Row(t.trigger, segments, note, f"trigger-{name}")


def _group_label(g: Group) -> str:
    return f"{g.route} / {g.tier or '(none)'}"


def _group_name(g: Group) -> str:
    return f"{slug(g.route)}-{slug(g.tier)}"


def latency_chart(report: Report) -> BarChart | None:
    rows = []
    for g in report.groups:
        name, lat = _group_name(g), g.latency
        points = [("p50", lat.p50_ms), ("p95", lat.p95_ms), ("p99", lat.p99_ms)]
        segs = [
            Segment(v or 0.0, css, f"{css} {ms(v)}", f"latency-{name}-{css}") for css, v in points
        ]
        rows.append(Row(_group_label(g), segs, "", f"latency-{name}"))
    return bars(rows, "latency percentiles per route and tier", grouped=True)


def satisfaction_chart(report: Report) -> BarChart | None:
    rows = []
    for g in report.groups:
        s, name = g.satisfaction, _group_name(g)
        note = f"{pct(s.mean)} ({s.count} scores)" if s.count else "no feedback"
        seg = Segment(s.mean or 0.0, "sat", note, f"satisfaction-{name}-bar")
        rows.append(Row(_group_label(g), [seg], note, f"satisfaction-{name}"))
    return bars(rows, "satisfaction per route and tier", scale=1.0)


def group_rows(report: Report) -> list[GroupRow]:
    out = []
    for g in report.groups:
        name = f"group-{_group_name(g)}"
        cells = [
            Cell(f"{name}-{col}", text)
            for col, text in zip(GROUP_COLUMNS, group_cells(g), strict=True)
        ]
        out.append(GroupRow(name, g.route, g.tier or "(none)", cells))
    return out
