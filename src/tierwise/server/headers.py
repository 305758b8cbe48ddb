"""The `x-tierwise-*` response headers of an answered request."""

from __future__ import annotations

from tierwise.record import RequestRecord


def record_headers(record: RequestRecord) -> dict[str, str]:
    headers = _headers(record)
    if record.experiment is not None:
        headers["x-tierwise-experiment"] = f"{record.experiment}/{record.variant}"
    return headers


def _headers(record: RequestRecord) -> dict[str, str]:
    return {
        "x-request-id": record.request_id,
        "x-tierwise-route": record.route,
        "x-tierwise-model": record.final_deployment or "",
        "x-tierwise-tier": record.final_tier or "",
        "x-tierwise-attempts": str(len(record.calls)),
        "x-tierwise-cost-usd": f"{record.cost.total_usd:f}",
        "x-tierwise-status": record.status,
    }
