"""`GET /dashboard/requests` (recent requests, newest first, filtered and paged)
and `GET /dashboard/requests/{id}` (one request's decision and attempts), with
the dashboard's access rule."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from tierwise.errors import AccessError, RequestError
from tierwise.observability.report import parse_since
from tierwise.server.auth import ApiKey
from tierwise.server.dashboard.access import COOKIE, viewer
from tierwise.server.dashboard.explorer import detail_view, request_line
from tierwise.server.dashboard.filters import load_filters
from tierwise.server.dashboard.render import (
    DEFAULT_SINCE,
    WHOLE_NUMBER,
    html_response,
    login_page,
    message_page,
    request_page,
    requests_page,
)
from tierwise.server.dashboard.scope import may_see, scoped, visible_ring
from tierwise.store.guard import guarded_store
from tierwise.store.reports import EVERYTHING

if TYPE_CHECKING:
    from tierwise.server.dashboard.handlers import DashboardState

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


def add_explorer_routes(app: web.Application, state: DashboardState) -> None:
    explorer = Explorer(state)
    app.router.add_get("/dashboard/requests", explorer.listing)
    app.router.add_get("/dashboard/requests/{request_id}", explorer.detail)


def _number(request: web.Request, name: str, default: int, top: int) -> int:
    text = request.query.get(name, "").strip()
    if not text:
        return default
    if not WHOLE_NUMBER.fullmatch(text) or int(text) > top:
        raise RequestError(f"{name} is a whole number from 0 to {top}", param=name)
    return int(text)


class Explorer:
    """The explorer's handlers, reading only `state`."""

    def __init__(self, state: DashboardState) -> None:
        self.state = state

    def _viewer(self, request: web.Request) -> tuple[ApiKey | None, web.Response | None]:
        """The caller's key, or a sign-in form or refusal for one who may not look."""
        try:
            key = viewer(self.state.keys, request.headers, request.cookies, self.state.clock())[0]
        except AccessError as exc:
            if exc.status == 401:
                retry = COOKIE in request.cookies or "authorization" in request.headers
                return None, html_response(login_page(exc.message if retry else None), 401)
            return None, html_response(message_page(exc.message), exc.status)
        return key, None

    async def listing(self, request: web.Request) -> web.Response:
        """Recent requests matching the filters, `limit` per page from `offset`."""
        key, refused = self._viewer(request)
        if refused is not None:
            return refused
        try:
            return html_response(await self._listing(request, key))
        except (RequestError, ValueError) as exc:
            return html_response(message_page(getattr(exc, "message", str(exc))), 400)

    async def _listing(self, request: web.Request, key: ApiKey | None) -> str:
        now = self.state.clock()
        since_text = request.query.get("since", DEFAULT_SINCE).strip() or DEFAULT_SINCE
        since = parse_since(since_text, now)
        limit = max(_number(request, "limit", DEFAULT_LIMIT, MAX_LIMIT), 1)
        offset = _number(request, "offset", 0, 10**9)
        store = guarded_store(self.state.writer, "the request explorer")
        ring = visible_ring(self.state.keys, key)
        async with self.state.gate:
            scope = scoped(EVERYTHING, key, ring)
            filters = await load_filters(store, request.query, since_text, ring, now, scope)
            where = scoped(filters.where, key, self.state.keys)
            rows = await store.recent_requests(since, now, where, limit + 1, offset)
            total = await store.count_matching(since, now, where)
        lines = [request_line(r) for r in rows[:limit]]
        more = len(rows) > limit
        return requests_page(filters, lines, total, limit, offset, more)

    async def detail(self, request: web.Request) -> web.Response:
        """One request: its routing decision, every attempt, totals and text."""
        key, refused = self._viewer(request)
        if refused is not None:
            return refused
        request_id = request.match_info["request_id"]
        if not REQUEST_ID.fullmatch(request_id):
            return html_response(message_page("not a request id"), 400)
        try:
            store = guarded_store(self.state.writer, "the request explorer")
            async with self.state.gate:
                row = await store.request_detail(request_id)
                attempts = await store.attempts_of([request_id]) if row else []
        except RequestError as exc:
            return html_response(message_page(exc.message), exc.status)
        ring = self.state.keys
        if row is None or not may_see(key, ring, row["team"], row["api_key"]):
            return html_response(message_page(f"no request {request_id} in the log"), 404)
        return html_response(request_page(detail_view(row, attempts)))
