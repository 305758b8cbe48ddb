"""What `tierwise simulate` writes and prints: the learning curve as CSV, its plot
(when matplotlib is installed), and a short text summary."""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

WITHIN = 0.10
"""The learned router's cost share counts as caught up within 10% of the offline one."""


@dataclass(slots=True)
class Point:
    """One row of the learning curve."""

    requests: int
    labelled: int
    status: str
    learned_cost_share: float | None
    learned_quality_share: float | None
    serving: str
    route_usd: float
    exploration_usd: float
    exploration_share: float


@dataclass(slots=True)
class Result:
    spec: dict[str, Any]
    pool: int
    test: int
    strong: str
    offline: dict[str, float]
    curve: list[Point] = field(default_factory=list)
    judge: dict[str, int] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)
    """The starting router's held-out shares (empty when it cannot decide offline)."""


def write_curve(curve: Sequence[Point], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, [f.name for f in fields(Point)], lineterminator="\n")
        writer.writeheader()
        for point in curve:
            writer.writerow({k: _cell(v) for k, v in asdict(point).items()})


def _cell(value: object) -> object:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def caught_up(result: Result) -> int | None:
    """The first request count at which the learned router's held-out cost share is
    within `WITHIN` of the offline router's with at least its quality share less 1%."""
    offline = result.offline
    for point in result.curve:
        cost, quality = point.learned_cost_share, point.learned_quality_share
        if cost is None or quality is None:
            continue
        if (
            cost <= offline["cost_share"] * (1 + WITHIN)
            and quality >= offline["quality_share"] - 0.01
        ):
            return point.requests
    return None


def write_plot(result: Result, path: Path) -> Path | None:
    """The learned router's held-out cost share over requests, with the offline
    router's and the exploration share; None without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    shown = [
        (p.requests, p.learned_cost_share, p.learned_quality_share)
        for p in result.curve
        if p.learned_cost_share is not None and p.learned_quality_share is not None
    ]
    xs = [n for n, _, _ in shown]
    ax.plot(xs, [c for _, c, _ in shown], "o-", label="learned: cost share")
    ax.plot(xs, [q for _, _, q in shown], "s-", label="learned: quality share")
    offline = result.offline
    ax.axhline(offline["cost_share"], color="C0", ls="--", label="offline: cost share")
    ax.axhline(offline["quality_share"], color="C1", ls="--", label="offline: quality share")
    if result.start:
        for key, color in (("cost_share", "C0"), ("quality_share", "C1")):
            name = key.replace("_", " ")
            ax.axhline(result.start[key], color=color, ls=":", label=f"starting router: {name}")
    every = [p.requests for p in result.curve]
    ax.plot(every, [p.exploration_share for p in result.curve], "x:", label="exploration share")
    ax.set_xlabel("requests")
    ax.set_ylabel(f"share of {result.strong}")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=7)
    ax.set_title("learning from the gateway's own traffic (held-out prompts)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def summary_text(result: Result) -> str:
    offline = result.offline
    lines = [
        f"{result.pool} prompts in the traffic pool, {result.test} held out; strong model "
        f"{result.strong}",
        f"offline (same router, every score of the pool): cost {offline['cost_share']:.1%}, "
        f"quality {offline['quality_share']:.1%} of {result.strong}'s on held-out prompts",
        _start_line(result),
        "",
        "| requests | labelled | learn step | serving | cost share | quality share | "
        "exploration share |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in result.curve:
        lines.append(
            f"| {p.requests} | {p.labelled} | {p.status} | {p.serving} | "
            f"{_pct(p.learned_cost_share)} | {_pct(p.learned_quality_share)} | "
            f"{p.exploration_share:.1%} |"
        )
    reached = caught_up(result)
    lines.append("")
    lines.append(
        f"within {WITHIN:.0%} of the offline cost share (quality no more than 1 point "
        f"lower) after {reached} requests"
        if reached is not None
        else f"not within {WITHIN:.0%} of the offline cost share in {result.spec['requests']} "
        "requests"
    )
    return "\n".join(lines)


def _start_line(result: Result) -> str:
    start, router = result.start, result.spec.get("router", "the starting router")
    if not start:
        return f"starting router ({router}): cannot decide offline, not measured"
    return (
        f"starting router ({router}): cost {start['cost_share']:.1%}, quality "
        f"{start['quality_share']:.1%}"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
