"""`GET /dashboard` (HTML), `GET /dashboard/data.json`, and the sign-in and
sign-out forms, as handlers bound to the state they read.

Queries run only when a page or the JSON is requested, one report at a time.
Errors raised here (`RequestError`, `AccessError`) become error objects in the
application's error middleware.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tierwise.drift.audit import read_calibrations
from tierwise.errors import AccessError, RequestError
from tierwise.experiments.state import Experiments
from tierwise.experiments.status import experiment_report
from tierwise.observability.report import Report, parse_since, summarize
from tierwise.server.auth import ApiKey, KeyRing
from tierwise.server.dashboard.access import (
    COOKIE,
    SESSION_S,
    may_view,
    same_origin,
    session_token,
    signed_key,
    viewer,
)
from tierwise.server.dashboard.experiments import (
    CalibrationView,
    ExperimentView,
    calibration_view,
    experiment_view,
)
from tierwise.server.dashboard.explorer_handlers import add_explorer_routes
from tierwise.server.dashboard.filters import Filters, load_filters
from tierwise.server.dashboard.render import (
    DEFAULT_SINCE,
    PAGE_HEADERS,
    WHOLE_NUMBER,
    dashboard_page,
    html_response,
    login_page,
    message_page,
)
from tierwise.server.dashboard.scope import (
    groupings,
    is_admin,
    key_teams,
    scoped,
    visible_ring,
)
from tierwise.server.dashboard.views import page as dashboard_view
from tierwise.store import Store
from tierwise.store.guard import guarded_store
from tierwise.store.reports import EVERYTHING
from tierwise.store.writer import RecordWriter


@dataclass(frozen=True, slots=True)
class DashboardState:
    """What the dashboard reads: the API keys, the request log (None when it is
    off), the experiments of the gateway serving now (a reload replaces it), and the
    wall clock (epoch seconds)."""

    keys: KeyRing
    writer: RecordWriter | None
    experiments: Callable[[], Experiments]
    clock: Callable[[], float] = time.time
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))


def add_dashboard_routes(app: web.Application, state: DashboardState) -> None:
    """Mount the dashboard on `app` (before it starts)."""
    dashboard = Dashboard(state)
    app.router.add_get("/dashboard", dashboard.page)
    app.router.add_get("/dashboard/data.json", dashboard.data_json)
    app.router.add_post("/dashboard/login", dashboard.login)
    app.router.add_post("/dashboard/logout", dashboard.logout)
    add_explorer_routes(app, state)


def _see_dashboard() -> web.Response:
    return web.Response(status=303, headers={"location": "/dashboard", **PAGE_HEADERS})


class Dashboard:
    """The dashboard's handlers, reading only `state`."""

    def __init__(self, state: DashboardState) -> None:
        self.state = state

    def _viewer(self, request: web.Request) -> bool:
        """Whether the caller came with the session cookie; raises AccessError."""
        now = self.state.clock()
        return viewer(self.state.keys, request.headers, request.cookies, now)[1]

    def _key(self, request: web.Request) -> ApiKey | None:
        """The viewer's key (None when no keys are configured); raises AccessError."""
        return viewer(self.state.keys, request.headers, request.cookies, self.state.clock())[0]

    def _store(self) -> Store:
        return guarded_store(self.state.writer, "the dashboard")

    async def _report(
        self, request: web.Request, store: Store, since: float, now: float, filters: Filters
    ) -> Report:
        bucket = request.query.get("bucket_s", "")
        bucket_s = int(bucket) if WHOLE_NUMBER.fullmatch(bucket) and int(bucket) > 0 else None
        key = self._key(request)
        where = scoped(filters.where, key, self.state.keys)
        teams, by = key_teams(self.state.keys), groupings(key)
        async with self.state.gate:
            return await summarize(store, since, now, bucket_s, where=where, by=by, teams=teams)

    async def _filters(self, request: web.Request, store: Store, since_text: str) -> Filters:
        """The route, team and model filters and refresh interval; raises RequestError."""
        now = self.state.clock()
        key = self._key(request)
        ring = visible_ring(self.state.keys, key)
        async with self.state.gate:
            return await load_filters(
                store, request.query, since_text, ring, now, scoped(EVERYTHING, key, ring)
            )

    async def page(self, request: web.Request) -> web.Response:
        """The HTML dashboard; a sign-in form when a key is needed."""
        try:
            signed_in = self._viewer(request)
        except AccessError as exc:
            if exc.status == 401:
                retry = COOKIE in request.cookies or "authorization" in request.headers
                return html_response(login_page(exc.message if retry else None), 401)
            return html_response(message_page(exc.message), exc.status)
        since_text = request.query.get("since", DEFAULT_SINCE).strip() or DEFAULT_SINCE
        now = self.state.clock()
        try:
            since = parse_since(since_text, now)
        except ValueError as exc:
            return html_response(message_page(str(exc)), 400)
        try:
            store = self._store()
            filters = await self._filters(request, store, since_text)
            report = await self._report(request, store, since, now, filters)
            experiments, calibrations = await self._experiments(store, now)
            admin = is_admin(self._key(request))
        except RequestError as exc:
            return html_response(message_page(exc.message), exc.status)
        shown = (experiments, calibrations) if admin else (None, None)
        page = dashboard_view(report, since_text, signed_in, *shown)
        return html_response(dashboard_page(page, filters))

    async def _experiments(
        self, store: Store, now: float
    ) -> tuple[list[ExperimentView], list[CalibrationView]]:
        async with self.state.gate:
            reports = [
                await experiment_report(store, s, now) for s in self.state.experiments().states()
            ]
            calibrations = await read_calibrations(store, limit=20)
        return [experiment_view(r) for r in reports], [calibration_view(c) for c in calibrations]

    async def data_json(self, request: web.Request) -> web.Response:
        """The report as JSON (`?since=24h`, optional `bucket_s`)."""
        self._viewer(request)
        now = self.state.clock()
        try:
            since = parse_since(request.query.get("since", DEFAULT_SINCE), now)
        except ValueError as exc:
            raise RequestError(str(exc), param="since") from None
        store = self._store()
        filters = await self._filters(request, store, request.query.get("since", DEFAULT_SINCE))
        report = await self._report(request, store, since, now, filters)
        return web.Response(
            body=orjson.dumps(report.to_json()),
            content_type="application/json",
            headers={"cache-control": "no-store"},
        )

    async def login(self, request: web.Request) -> web.Response:
        """Check a key posted from the sign-in form and set the session cookie."""
        same_origin(request.headers.get("origin"), request.host)
        ring = self.state.keys
        if not ring.named():
            return _see_dashboard()
        try:
            presented = (await request.post()).get("key")
        except (ValueError, UnicodeDecodeError, AssertionError, HttpProcessingError):
            raise RequestError("the sign-in form could not be read") from None
        try:
            if not isinstance(presented, str) or not presented.strip():
                raise AccessError("enter an API key")
            key = signed_key(ring, {"x-api-key": presented.strip()})
            may_view(key)
        except AccessError as exc:
            return html_response(login_page(exc.message), exc.status)
        if key is None:
            return _see_dashboard()
        response = _see_dashboard()
        response.set_cookie(
            COOKIE,
            session_token(key, int(self.state.clock()) + SESSION_S),
            max_age=SESSION_S,
            path="/dashboard",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        same_origin(request.headers.get("origin"), request.host)
        response = _see_dashboard()
        response.del_cookie(COOKIE, path="/dashboard")
        return response
