"""What the dashboard's experiments and threshold-changes sections show, from
experiment reports and the calibration audit (`tierwise.drift.audit`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierwise.observability.formatting import pct, slug, when

VARIANT_COLUMNS = (
    "requests", "cost/request", "escalations", "errors", "satisfaction", "feedback", "judged",
)  # fmt: skip
CALIBRATION_COLUMNS = (
    "when", "route", "parameter", "old", "new", "status", "by", "strong share",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExperimentView:
    name: str
    slug: str
    route: str
    unit: str
    state: str
    reason: str | None
    summaries: list[str]
    variants: list[tuple[str, list[str]]]


@dataclass(frozen=True, slots=True)
class CalibrationView:
    created: str
    route: str
    parameter: str
    old: str
    new: str
    status: str
    actor: str
    shares: str


def experiment_view(report: dict[str, Any]) -> ExperimentView:
    """One experiment report (`tierwise.experiments.status.experiment_report`)."""
    state = str(report["status"])
    if report["serving"]:
        state += f", serving {report['serving']}"
    if report["rolled_back"]:
        state += " (rolled back)"
    return ExperimentView(
        report["name"],
        slug(report["name"]),
        report["route"],
        report["unit"],
        state,
        report["reason"] or None,
        [c["summary"] for c in report["comparisons"]],
        [(name, _variant_cells(data)) for name, data in report["variants"].items()],
    )


def _variant_cells(data: dict[str, Any]) -> list[str]:
    cost = data["cost_per_request_usd"]
    return [
        str(data["requests"]),
        f"${cost:.6f}" if cost is not None else "-",
        pct(data["escalation_rate"]),
        pct(data["error_rate"]),
        pct(data["satisfaction"]["mean"]),
        str(data["satisfaction"]["n"]),
        str(data["judge"]["n"]),
    ]


def calibration_view(row: dict[str, Any]) -> CalibrationView:
    """One audited threshold change (`tierwise.drift.audit.read_calibrations`)."""
    evidence = row["evidence"]
    return CalibrationView(
        when(row["created_at"]),
        row["route"],
        row["parameter"],
        _num(row["old_value"]),
        _num(row["new_value"]),
        "applied" if row["applied"] else "proposed",
        row["actor"] or "",
        f"{pct(evidence.get('share_before'))} → {pct(evidence.get('share_after'))}",
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
