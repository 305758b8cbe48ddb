"""Chart geometry: where each bar, column, label and tick of the dashboard's
inline SVG charts goes. Templates draw what these functions place.

Colours come from CSS classes; every drawn value carries a title (its tooltip)
and a test id when one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from tierwise.observability.formatting import usd

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


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str
    testid: str | None = None

    @classmethod
    def at(
        cls, x: float, y: float, w: float, h: float, css: str, title: str, testid: str | None
    ) -> Rect:
        """A rectangle; a negative width or height is drawn as nothing."""
        return cls(x, y, max(w, 0.0), max(h, 0.0), css, title, testid)


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    css: str = "label"
    anchor: str = "start"


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class Bar:
    rect: Rect
    tag: Label | None = None


@dataclass(frozen=True, slots=True)
class BarRow:
    testid: str | None
    label: Label
    bars: list[Bar]
    note: Label


@dataclass(frozen=True, slots=True)
class BarChart:
    view_box: str
    label: str
    rows: list[BarRow]


@dataclass(frozen=True, slots=True)
class Bucket:
    title: str
    rects: list[Rect]


@dataclass(frozen=True, slots=True)
class ColumnChart:
    view_box: str
    label: str
    testid: str
    axes: list[Line]
    scale: list[Label]
    buckets: list[Bucket]
    times: list[Label]


def px(value: float) -> str:
    """A coordinate as drawn: one decimal."""
    return f"{value:.1f}"


def _view_box(height: float) -> str:
    return f"0 0 {WIDTH} {height:.0f}"


def bars(
    rows: Sequence[Row], label: str, *, grouped: bool = False, scale: float = 0.0
) -> BarChart | None:
    """Horizontal bars (None without rows); segments stack unless `grouped`.
    `scale` fixes the full-width value (default: the largest row)."""
    if not rows:
        return None
    span = WIDTH - LABEL_W - NOTE_W
    biggest = max(_row_extent(r, grouped) for r in rows)
    per_unit = span / (scale or biggest or 1.0)
    step = ROW_H * (len(rows[0].segments) if grouped else 1) + 6
    placed = []
    for index, row in enumerate(rows):
        top = 4 + index * step
        placed.append(
            BarRow(
                row.testid,
                Label(LABEL_W - 8, top + BAR_H - 3, row.label, anchor="end"),
                _segments(row, top, per_unit, grouped),
                Label(LABEL_W + span + 8, top + BAR_H - 3, row.note, "note"),
            )
        )
    return BarChart(_view_box(4 + len(rows) * step), label, placed)


def _row_extent(row: Row, grouped: bool) -> float:
    values = [max(s.value, 0.0) for s in row.segments]
    return max(values, default=0.0) if grouped else sum(values)


def _segments(row: Row, top: float, per_unit: float, grouped: bool) -> list[Bar]:
    out, x = [], float(LABEL_W)
    for index, seg in enumerate(row.segments):
        w = max(seg.value, 0.0) * per_unit
        if grouped:
            y = top + index * ROW_H
            rect = Rect.at(LABEL_W, y, w, BAR_H, seg.css, seg.title, seg.testid)
            out.append(Bar(rect, Label(LABEL_W + w + 4, y + BAR_H - 3, seg.title, "note")))
        else:
            out.append(Bar(Rect.at(x, top, w, BAR_H, seg.css, seg.title, seg.testid)))
            x += w
    return out


def money_columns(
    columns: Sequence[Column], step_s: int, label: str, testid: str
) -> ColumnChart | None:
    """Spend columns with the router tax stacked on top, and savings columns
    (below the axis when negative), one pair per time bucket; None without buckets."""
    if not columns:
        return None
    left, top, plot_w, plot_h = 70.0, 10.0, WIDTH - 80.0, 180.0
    high = max(max(c.spend, c.savings) for c in columns) or 1.0
    low = min(0.0, *(c.savings for c in columns))
    per = plot_h / (high - low)
    zero = top + high * per
    slot = plot_w / len(columns)
    bar = max(slot * 0.4, 0.5)
    buckets = [_bucket(c, left + i * slot, bar, zero, per) for i, c in enumerate(columns)]
    axes = [Line(left, zero, left + plot_w, zero), Line(left, top, left, top + plot_h)]
    scale = _money_ticks(left, top, plot_h, high, low, zero)
    times = _time_ticks(columns, step_s, left, slot, top + plot_h + 16)
    return ColumnChart(_view_box(top + plot_h + 24), label, testid, axes, scale, buckets, times)


def _bucket(c: Column, x: float, bar: float, zero: float, per: float) -> Bucket:
    base = c.spend - c.router
    y, h = (zero - c.savings * per, c.savings * per) if c.savings >= 0 else (zero, -c.savings * per)
    return Bucket(
        c.title,
        [
            Rect.at(x, zero - base * per, bar, base * per, "spend", c.title, None),
            Rect.at(x, zero - c.spend * per, bar, c.router * per, "router", c.title, None),
            Rect.at(x + bar, y, bar, h, "savings" if c.savings >= 0 else "loss", c.title, None),
        ],
    )


def money_tick(value: float) -> str:
    """`value` dollars to four significant digits, in plain notation (`$0.00002908`)."""
    return usd(Decimal(f"{value:.4g}"))


def _money_ticks(
    left: float, top: float, h: float, high: float, low: float, zero: float
) -> list[Label]:
    out = [
        Label(left - 4, top + 8, money_tick(high), "tick", "end"),
        Label(left - 4, zero + 4, "$0", "tick", "end"),
    ]
    if low < 0:
        out.append(Label(left - 4, top + h, money_tick(low), "tick", "end"))
    return out


def _time_ticks(
    columns: Sequence[Column], step_s: int, left: float, slot: float, y: float
) -> list[Label]:
    every = max(len(columns) // 6, 1)
    form = "%m-%d %H:%M" if step_s < 86400 else "%Y-%m-%d"
    return [
        Label(
            left + i * slot, y, datetime.fromtimestamp(columns[i].start, UTC).strftime(form), "tick"
        )
        for i in range(0, len(columns), every)
    ]
