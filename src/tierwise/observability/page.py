"""The dashboard as one server-rendered HTML page: no scripts, inline CSS and SVG."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from tierwise.observability import svg
from tierwise.observability.figures import Failure, Group, Report
from tierwise.observability.svg import Column, Row, Segment, attr

RANGES = ("1h", "24h", "7d", "30d")
PROMPT_CHARS = 500
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{display:flex;gap:16px;align-items:center;flex-wrap:wrap;padding:12px 20px;
background:#1d2330;color:#fff}
header h1{font-size:18px;margin:0 12px 0 0}
header a{color:#9cc3ff}
form{display:inline-flex;gap:6px;align-items:center;margin:0}
main{padding:16px 20px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 16px;
margin:0 0 16px}
h2{font-size:15px;margin:0 0 8px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.kpi{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px}
.kpi b{display:block;font-size:18px}
.kpi span{color:#5b6472;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:4px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.error,.loss,.unrecovered{fill:#d64545;background:#d64545}
.spend{fill:#3b6fd8;background:#3b6fd8}
.router{fill:#f0a030;background:#f0a030}
.savings{fill:#2f9e64;background:#2f9e64}
.fallback{fill:#5b8def;background:#5b8def}
.escalation{fill:#8a5cd6;background:#8a5cd6}
.p50{fill:#7fb2f0;background:#7fb2f0}
.p95{fill:#3b6fd8;background:#3b6fd8}
.p99{fill:#1d3f8a;background:#1d3f8a}
.share{fill:#3b6fd8}
.sat{fill:#2f9e64}
text.label{font-size:12px;fill:#1d2330}
text.note,text.tick{font-size:11px;fill:#5b6472}
line.axis{stroke:#9aa3b0;stroke-width:1}
.status-error,.status-cancelled{color:#b02a2a;font-weight:600}
.status-degraded{color:#a86400;font-weight:600}
ol{margin:4px 0;padding-left:20px}
pre{white-space:pre-wrap;margin:4px 0;background:#f5f6f8;padding:6px}
.problem{color:#b02a2a}
.empty{color:#5b6472}
svg{display:block;max-width:960px}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def slug(name: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) if name else "none"


def usd(value: Decimal) -> str:
    """Exact below a dollar, cents above."""
    sign, size = ("-" if value < 0 else ""), abs(value)
    text = f"{size:,.2f}" if size >= 1 else format(size.normalize(), "f")
    return f"{sign}${text}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def shell(title: str, body: str, header: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>tierwise</h1>{header}</header><main>{body}</main></body></html>"
    )


def login_page(problem: str | None = None) -> str:
    note = (
        f'<p class="problem" data-testid="login-problem">{escape(problem)}</p>' if problem else ""
    )
    form = (
        "<section><h2>Sign in with an API key</h2>"
        "<p>The key is checked like an API request and then kept in an HttpOnly cookie "
        "holding a signed, expiring session, not the key.</p>"
        f'{note}<form method="post" action="/dashboard/login">'
        '<input type="password" name="key" autocomplete="current-password" '
        'placeholder="API key" required> <button type="submit">Sign in</button></form></section>'
    )
    return shell("tierwise dashboard: sign in", form)


def message_page(text: str) -> str:
    return shell("tierwise dashboard", f'<section><p class="problem">{escape(text)}</p></section>')


def dashboard_page(report: Report, since_text: str, signed_in: bool, extra: str = "") -> str:
    """The page; `extra` is more sections (experiments, threshold changes) at the end."""
    body = "".join(
        [
            _kpis(report),
            _spend(report),
            _tiers(report),
            _triggers(report),
            _latency(report),
            _satisfaction(report),
            _groups_table(report),
            _failures(report.failures),
            extra,
        ]
    )
    return shell("tierwise dashboard", body, _header(report, since_text, signed_in))


def _header(report: Report, since_text: str, signed_in: bool) -> str:
    options = "".join(f'<option value="{r}">' for r in RANGES)
    links = " ".join(f'<a href="/dashboard?since={r}">{r}</a>' for r in RANGES)
    out = (
        '<form method="get" action="/dashboard" data-testid="range-form">'
        '<label for="since">since</label>'
        f'<input id="since" name="since" value="{attr(since_text)}" list="ranges" size="10">'
        f'<datalist id="ranges">{options}</datalist><button type="submit">show</button></form>'
        f"<span>{links}</span>"
        f'<span data-testid="range">{when(report.since)} to {when(report.until)}</span>'
        f'<a href="/dashboard/data.json?since={attr(since_text)}">data.json</a>'
    )
    if signed_in:
        out += '<form method="post" action="/dashboard/logout"><button>sign out</button></form>'
    return out


def _kpi(testid: str, value: str, label: str, exact: str | None = None) -> str:
    data = f' data-value="{attr(exact)}"' if exact is not None else ""
    shown = f'<b data-testid="{testid}"{data}>{escape(value)}</b>'
    return f'<div class="kpi">{shown}<span>{escape(label)}</span></div>'


def _kpis(report: Report) -> str:
    c, m, s = report.counts, report.money, report.satisfaction
    rate = (lambda n: n / c.requests) if c.requests else (lambda n: None)
    cards = [
        _kpi("kpi-requests", str(c.requests), "requests"),
        _kpi("kpi-errors", str(c.errors), "errors"),
        _kpi("kpi-degraded", str(c.degraded), "degraded"),
        _kpi("kpi-spend", usd(m.spend_usd), "spend", f"{m.spend_usd:f}"),
        _kpi("kpi-baseline", usd(m.baseline_usd), "baseline cost", f"{m.baseline_usd:f}"),
        _kpi("kpi-savings", usd(m.savings_usd), "savings", f"{m.savings_usd:f}"),
        _kpi("kpi-savings-share", pct(m.savings_share), "saved vs baseline"),
        _kpi("kpi-router-tax", usd(m.router_usd), "router tax", f"{m.router_usd:f}"),
        _kpi("kpi-check-cost", usd(m.checks_usd), "check cost", f"{m.checks_usd:f}"),
        _kpi("kpi-fallback-rate", pct(rate(c.fallbacks)), "requests with >1 call"),
        _kpi("kpi-escalation-rate", pct(rate(c.escalations)), "requests escalated"),
        _kpi("kpi-p95", ms(report.latency.p95_ms), "p95 latency"),
        _kpi("kpi-satisfaction", pct(s.mean), f"satisfaction ({s.count} scores)"),
    ]
    return f'<section data-testid="kpis"><div class="kpis">{"".join(cards)}</div></section>'


def _legend(*items: tuple[str, str]) -> str:
    keys = "".join(f'<i class="{css}"></i>{escape(text)}' for css, text in items)
    return f'<p class="legend">{keys}</p>'


def _spend(report: Report) -> str:
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
    chart = svg.money_columns(
        columns, report.bucket_s, "spend and savings over time", "chart-spend"
    )
    legend = _legend(("spend", "spend"), ("router", "router tax"), ("savings", "savings"))
    step = (
        f"{report.bucket_s // 60} min"
        if report.bucket_s < 86400
        else f"{report.bucket_s // 86400} d"
    )
    return f"<section><h2>Spend and savings over time (per {step})</h2>{legend}{chart}</section>"


def _tiers(report: Report) -> str:
    rows = [
        Row(
            tier or "(none answered)",
            [Segment(share or 0.0, "share", f"{tier or 'none'}: {n} requests", None)],
            f"{pct(share)} ({n})",
            f"tier-share-{slug(tier)}",
        )
        for tier, n, share in report.tier_shares()
    ]
    chart = svg.bars(rows, "share of traffic per tier", scale=1.0)
    return f'<section data-testid="chart-tiers"><h2>Share of traffic per tier</h2>{chart}</section>'


def _triggers(report: Report) -> str:
    total = report.counts.requests
    rows = []
    for t in report.triggers:
        name = slug(t.trigger)
        rows.append(
            Row(
                t.trigger,
                [
                    Segment(
                        t.fallbacks,
                        "fallback",
                        f"{t.fallbacks} fallbacks",
                        f"trigger-{name}-fallbacks",
                    ),
                    Segment(
                        t.escalations,
                        "escalation",
                        f"{t.escalations} escalations",
                        f"trigger-{name}-escalations",
                    ),
                    Segment(
                        t.unrecovered,
                        "unrecovered",
                        f"{t.unrecovered} unrecovered",
                        f"trigger-{name}-unrecovered",
                    ),
                ],
                f"{t.fallbacks} fb ({pct(t.fallbacks / total if total else None)}) / "
                f"{t.escalations} esc ({pct(t.escalations / total if total else None)}) / "
                f"{t.unrecovered} unrec.",
                f"trigger-{name}",
            )
        )
    legend = _legend(
        ("fallback", "fallback (same tier)"),
        ("escalation", "escalation (next tier)"),
        ("unrecovered", "unrecovered"),
    )
    chart = svg.bars(rows, "fallbacks and escalations by trigger")
    return (
        '<section data-testid="chart-triggers"><h2>Fallbacks and escalations by trigger '
        f"(rates per request)</h2>{legend}{chart}</section>"
    )


def _group_label(g: Group) -> str:
    return f"{g.route} / {g.tier or '(none)'}"


def _latency(report: Report) -> str:
    rows = []
    for g in report.groups:
        name, lat = f"{slug(g.route)}-{slug(g.tier)}", g.latency
        points = [("p50", lat.p50_ms), ("p95", lat.p95_ms), ("p99", lat.p99_ms)]
        segs = [
            Segment(v or 0.0, css, f"{css} {ms(v)}", f"latency-{name}-{css}") for css, v in points
        ]
        rows.append(Row(_group_label(g), segs, "", f"latency-{name}"))
    legend = _legend(("p50", "p50"), ("p95", "p95"), ("p99", "p99"))
    chart = svg.bars(rows, "latency percentiles per route and tier", grouped=True)
    return (
        '<section data-testid="chart-latency"><h2>Latency percentiles per route and tier</h2>'
        f"{legend}{chart}</section>"
    )


def _satisfaction(report: Report) -> str:
    rows = []
    for g in report.groups:
        s, name = g.satisfaction, f"{slug(g.route)}-{slug(g.tier)}"
        note = f"{pct(s.mean)} ({s.count} scores)" if s.count else "no feedback"
        seg = Segment(s.mean or 0.0, "sat", note, f"satisfaction-{name}-bar")
        rows.append(Row(_group_label(g), [seg], note, f"satisfaction-{name}"))
    chart = svg.bars(rows, "satisfaction per route and tier", scale=1.0)
    return (
        '<section data-testid="chart-satisfaction"><h2>Satisfaction per route and tier</h2>'
        f"{chart}</section>"
    )


GROUP_COLUMNS = (
    "requests", "share", "failed", "spend", "savings", "mean", "p50", "p95", "p99",
    "ttft", "fallback-rate", "escalation-rate", "satisfaction", "feedback",
)  # fmt: skip


def group_cells(g: Group) -> list[str]:
    c, lat = g.counts, g.latency
    rate = (lambda n: n / c.requests) if c.requests else (lambda n: None)
    return [
        str(c.requests), pct(g.share), str(c.errors + c.degraded + c.cancelled),
        usd(g.money.spend_usd), usd(g.money.savings_usd), ms(lat.mean_ms), ms(lat.p50_ms),
        ms(lat.p95_ms), ms(lat.p99_ms), ms(c.mean_first_token_ms), pct(rate(c.fallbacks)),
        pct(rate(c.escalations)), pct(g.satisfaction.mean), str(g.satisfaction.count),
    ]  # fmt: skip


def _groups_table(report: Report) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("route", "tier", *GROUP_COLUMNS))
    lines = []
    for g in report.groups:
        name = f"group-{slug(g.route)}-{slug(g.tier)}"
        cells = "".join(
            f'<td class="n" data-testid="{name}-{col}">{escape(v)}</td>'
            for col, v in zip(GROUP_COLUMNS, group_cells(g), strict=True)
        )
        lines.append(
            f'<tr data-testid="{name}"><td>{escape(g.route)}</td>'
            f"<td>{escape(g.tier or '(none)')}</td>{cells}</tr>"
        )
    rows = "".join(lines) or '<tr><td colspan="16" class="empty">No requests.</td></tr>'
    return (
        '<section><h2>Routes and tiers</h2><table data-testid="table-groups">'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _failures(failures: list[Failure]) -> str:
    if not failures:
        body = '<p class="empty" data-testid="no-failures">No failed requests in this range.</p>'
    else:
        body = "".join(_failure(f) for f in failures)
    return f'<section data-testid="failures"><h2>Recent failed requests</h2>{body}</section>'


def _failure(f: Failure) -> str:
    steps = "".join(
        f'<li data-testid="attempt"><b>{escape(a.deployment)}</b> ({escape(a.tier or "-")}) '
        f'<span data-testid="attempt-outcome">{escape(a.outcome)}</span> '
        f'<span data-testid="attempt-trigger">{escape(a.trigger or "")}</span>'
        f"{f' HTTP {a.status}' if a.status else ''} {ms(a.latency_ms)} {usd(a.cost_usd)}"
        f"{f' — {escape(a.detail)}' if a.detail else ''}</li>"
        for a in f.attempts
    )
    prompt = (
        f"<details><summary>prompt</summary><pre>{escape(f.prompt[:PROMPT_CHARS])}</pre></details>"
        if f.prompt
        else ""
    )
    key = f" key {escape(f.api_key)}" if f.api_key else ""
    return (
        f'<div data-testid="failure" data-request-id="{attr(f.request_id)}">'
        f'<p><span class="status-{attr(f.status)}" data-testid="failure-status">'
        f"{escape(f.status)}</span> {when(f.created_at)} <code>{escape(f.request_id)}</code> "
        f"route {escape(f.route)}{key} {ms(f.latency_ms)} {usd(f.cost_usd)}"
        f"{f' — {escape(f.error)}' if f.error else ''}</p><ol>{steps}</ol>{prompt}</div>"
    )
