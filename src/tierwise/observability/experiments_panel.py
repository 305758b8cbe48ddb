"""The dashboard's experiments and threshold-changes sections (plain HTML)."""

from __future__ import annotations

from html import escape
from typing import Any

from tierwise.observability.page import pct, slug, when


def experiments_section(reports: list[dict[str, Any]]) -> str:
    if not reports:
        body = '<p class="empty" data-testid="no-experiments">No experiments.</p>'
    else:
        body = "".join(_experiment(r) for r in reports)
    return f'<section data-testid="experiments"><h2>Experiments</h2>{body}</section>'


def _experiment(report: dict[str, Any]) -> str:
    name = slug(report["name"])
    state = escape(report["status"])
    if report["serving"]:
        state += f", serving {escape(report['serving'])}"
    if report["rolled_back"]:
        state += " (rolled back)"
    lines = "".join(
        f'<li data-testid="experiment-{name}-summary">{escape(c["summary"])}</li>'
        for c in report["comparisons"]
    )
    rows = "".join(_variant_row(v, data) for v, data in report["variants"].items())
    why = f" — {escape(report['reason'])}" if report["reason"] else ""
    return (
        f'<div data-testid="experiment-{name}"><p><b>{escape(report["name"])}</b> on route '
        f"{escape(report['route'])} by {escape(report['unit'])}: "
        f'<span data-testid="experiment-{name}-status">{state}</span>{why}</p>'
        f"<ul>{lines}</ul><table><thead><tr><th>variant</th><th>requests</th>"
        "<th>cost/request</th><th>escalations</th><th>errors</th><th>satisfaction</th>"
        f"<th>feedback</th><th>judged</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _variant_row(variant: str, data: dict[str, Any]) -> str:
    cost = data["cost_per_request_usd"]
    cells = [
        str(data["requests"]),
        f"${cost:.6f}" if cost is not None else "-",
        pct(data["escalation_rate"]),
        pct(data["error_rate"]),
        pct(data["satisfaction"]["mean"]),
        str(data["satisfaction"]["n"]),
        str(data["judge"]["n"]),
    ]
    tds = "".join(f'<td class="n">{escape(c)}</td>' for c in cells)
    return f"<tr><td>{escape(variant)}</td>{tds}</tr>"


def calibrations_section(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    items = "".join(
        f'<tr data-testid="calibration"><td>{when(r["created_at"])}</td>'
        f"<td>{escape(r['route'])}</td><td>{escape(r['parameter'])}</td>"
        f'<td class="n">{_num(r["old_value"])}</td><td class="n">{_num(r["new_value"])}</td>'
        f"<td>{'applied' if r['applied'] else 'proposed'}</td><td>{escape(r['actor'] or '')}</td>"
        f'<td class="n">{pct(r["evidence"].get("share_before"))} → '
        f"{pct(r['evidence'].get('share_after'))}</td></tr>"
        for r in rows
    )
    return (
        '<section data-testid="calibrations"><h2>Threshold changes</h2><table><thead><tr>'
        "<th>when</th><th>route</th><th>parameter</th><th>old</th><th>new</th><th>status</th>"
        f"<th>by</th><th>strong share</th></tr></thead><tbody>{items}</tbody></table></section>"
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
