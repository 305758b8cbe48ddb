"""Inline SVG charts as strings: horizontal bars and money columns over time.

Colours come from CSS classes; every drawn value carries a `<title>` tooltip
and a `data-testid` when one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

WIDTH = 720
LABEL_W = 170
NOTE_W = 230
ROW_H = 26
BAR_H = 16


@dataclass(frozen=True, slots=True)
class Segment:
    value: float
    css: str
    title: str
    testid: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled line: stacked segments (or side-by-side when `grouped`)."""

    label: str
    segments: list[Segment] = field(default_factory=list)
    note: str = ""
    testid: str | None = None


@dataclass(frozen=True, slots=True)
class Column:
    """One time bucket: spend (router tax stacked on top) and savings."""

    start: float
    spend: float
    router: float
    savings: float
    title: str


def attr(value: object) -> str:
    return escape(str(value), quote=True)


def _tid(testid: str | None) -> str:
    return f' data-testid="{attr(testid)}"' if testid else ""


def _rect(x: float, y: float, w: float, h: float, css: str, title: str, testid: str | None) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{max(h, 0.0):.1f}" '
        f'class="{attr(css)}"{_tid(testid)}><title>{escape(title)}</title></rect>'
    )


def _text(x: float, y: float, text: str, css: str = "label", anchor: str = "start") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _svg(height: float, body: list[str], label: str, testid: str | None) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {height:.0f}" width="100%" role="img" '
        f'aria-label="{attr(label)}" preserveAspectRatio="xMinYMin meet"{_tid(testid)}>'
        + "".join(body)
        + "</svg>"
    )


def bars(rows: Sequence[Row], label: str, *, grouped: bool = False, scale: float = 0.0) -> str:
    """Horizontal bars; segments stack unless `grouped`. `scale` fixes the
    full-width value (default: the largest row)."""
    if not rows:
        return '<p class="empty">No data in this range.</p>'
    span = WIDTH - LABEL_W - NOTE_W
    biggest = max(_row_extent(r, grouped) for r in rows)
    full = scale or biggest or 1.0
    body: list[str] = []
    step = ROW_H * (len(rows[0].segments) if grouped else 1) + 6
    for index, row in enumerate(rows):
        top = 4 + index * step
        body.append(f"<g{_tid(row.testid)}>")
        body.append(_text(LABEL_W - 8, top + BAR_H - 3, row.label, anchor="end"))
        body.extend(_segments(row, top, span / full, grouped))
        body.append(_text(LABEL_W + span + 8, top + BAR_H - 3, row.note, "note"))
        body.append("</g>")
    return _svg(4 + len(rows) * step, body, label, None)


def _row_extent(row: Row, grouped: bool) -> float:
    values = [max(s.value, 0.0) for s in row.segments]
    return max(values, default=0.0) if grouped else sum(values)


def _segments(row: Row, top: float, per_unit: float, grouped: bool) -> list[str]:
    out, x = [], float(LABEL_W)
    for index, seg in enumerate(row.segments):
        w = max(seg.value, 0.0) * per_unit
        if grouped:
            y = top + index * ROW_H
            out.append(_rect(LABEL_W, y, w, BAR_H, seg.css, seg.title, seg.testid))
            out.append(_text(LABEL_W + w + 4, y + BAR_H - 3, seg.title, "note"))
        else:
            out.append(_rect(x, top, w, BAR_H, seg.css, seg.title, seg.testid))
            x += w
    return out


def money_columns(columns: Sequence[Column], step_s: int, label: str, testid: str) -> str:
    """Spend columns with the router tax stacked on top, and savings columns
    (below the axis when negative), one pair per time bucket."""
    if not columns:
        return '<p class="empty">No data in this range.</p>'
    left, top, plot_w, plot_h = 70.0, 10.0, WIDTH - 80.0, 180.0
    high = max(max(c.spend, c.savings) for c in columns) or 1.0
    low = min(0.0, *(c.savings for c in columns))
    per = plot_h / (high - low)
    zero = top + high * per
    slot = plot_w / len(columns)
    bar = max(slot * 0.4, 0.5)
    body = _axis(left, top, plot_w, plot_h, high, low, zero)
    for i, c in enumerate(columns):
        x = left + i * slot
        body.append(f'<g data-testid="{attr(testid)}-bucket"><title>{escape(c.title)}</title>')
        base = c.spend - c.router
        body.append(_rect(x, zero - base * per, bar, base * per, "spend", c.title, None))
        body.append(_rect(x, zero - c.spend * per, bar, c.router * per, "router", c.title, None))
        y, h = (
            (zero - c.savings * per, c.savings * per)
            if c.savings >= 0
            else (zero, -c.savings * per)
        )
        css = "savings" if c.savings >= 0 else "loss"
        body.append(_rect(x + bar, y, bar, h, css, c.title, None))
        body.append("</g>")
    body.extend(_time_ticks(columns, step_s, left, slot, top + plot_h + 16))
    return _svg(top + plot_h + 24, body, label, testid)


def _axis(
    left: float, top: float, w: float, h: float, high: float, low: float, zero: float
) -> list[str]:
    out = [
        f'<line x1="{left}" y1="{zero:.1f}" x2="{left + w}" y2="{zero:.1f}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" class="axis"/>',
        _text(left - 4, top + 8, f"${high:.4g}", "tick", "end"),
        _text(left - 4, zero + 4, "$0", "tick", "end"),
    ]
    if low < 0:
        out.append(_text(left - 4, top + h, f"-${-low:.4g}", "tick", "end"))
    return out


def _time_ticks(
    columns: Sequence[Column], step_s: int, left: float, slot: float, y: float
) -> list[str]:
    every = max(len(columns) // 6, 1)
    form = "%m-%d %H:%M" if step_s < 86400 else "%Y-%m-%d"
    out = []
    for i in range(0, len(columns), every):
        when = datetime.fromtimestamp(columns[i].start, UTC).strftime(form)
        out.append(_text(left + i * slot, y, when, "tick"))
    return out
