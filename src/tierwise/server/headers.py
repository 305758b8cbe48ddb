"""The request ids, and the `x-tierwise-*` response headers of an answered request."""

from __future__ import annotations

import re

from aiohttp import web

from tierwise.record import RequestRecord

CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CLIENT_RID: web.RequestKey[str | None] = web.RequestKey("client_rid")


def client_request_id(request: web.Request) -> str | None:
    """The client's `x-request-id` when it is well formed; kept and echoed, never
    the key of the record (clients reuse ids)."""
    given = request.headers.get("x-request-id", "")
    return given if CLIENT_ID.match(given) else None


def id_headers(request_id: str, client_request_id: str | None) -> dict[str, str]:
    """The gateway's own id, and the client's `x-request-id` echoed (the gateway's id
    when the client sent none)."""
    return {"x-request-id": client_request_id or request_id, "x-tierwise-request-id": request_id}


def record_headers(record: RequestRecord) -> dict[str, str]:
    headers = {**id_headers(record.request_id, record.client_request_id), **_headers(record)}
    if record.experiment is not None:
        headers["x-tierwise-experiment"] = f"{record.experiment}/{record.variant}"
    if record.cache is not None:
        headers["x-tierwise-cache"] = record.cache
    return headers


def _headers(record: RequestRecord) -> dict[str, str]:
    return {
        "x-tierwise-route": record.route,
        "x-tierwise-model": record.final_deployment or "",
        "x-tierwise-tier": record.final_tier or "",
        "x-tierwise-attempts": str(len(record.calls)),
        "x-tierwise-cost-usd": f"{record.cost.total_usd:f}",
        "x-tierwise-status": record.status,
        "x-tierwise-checked": record.checked,
    }
