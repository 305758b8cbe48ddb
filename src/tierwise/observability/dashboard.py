"""`GET /dashboard` (HTML) and `GET /dashboard/data.json` over the request log.

Access is the API's: a key in `Authorization: Bearer` or `x-api-key`, or, for
browsers, a session cookie set by signing in with a key through a form. The
cookie holds an expiring HMAC made with the key's digest, never the key, and
is HttpOnly, SameSite=Strict and scoped to /dashboard. Keys limited to some
models cannot see the dashboard: it shows every route and key name. Queries
run only when a page or the JSON is requested, one report at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tierwise.errors import AccessError, RequestError
from tierwise.observability.page import CSP, dashboard_page, login_page, message_page
from tierwise.observability.report import Report, parse_since, summarize
from tierwise.server.app import GATEWAY, KEYS, WRITER, json_response
from tierwise.server.auth import ApiKey, KeyRing
from tierwise.store import Store
from tierwise.store.guard import guarded_store

COOKIE = "tierwise_dashboard"
SESSION_S = 12 * 3600
DEFAULT_SINCE = "24h"
GATE: web.AppKey[asyncio.Semaphore] = web.AppKey("dashboard_gate", asyncio.Semaphore)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


BUCKET = re.compile(r"[0-9]{1,9}")


def add_dashboard_routes(app: web.Application) -> None:
    """Mount the dashboard on `app` (before it starts)."""
    app[GATE] = asyncio.Semaphore(1)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/data.json", data_json)
    app.router.add_post("/dashboard/login", login)
    app.router.add_post("/dashboard/logout", logout)


def session_token(key: ApiKey, expires: int) -> str:
    return f"{expires}.{_mac(key, expires)}"


def _mac(key: ApiKey, expires: int) -> str:
    message = f"tierwise-dashboard|{key.name}|{expires}".encode()
    return hmac.new(key.sha256, message, hashlib.sha256).hexdigest()


def session_key(ring: KeyRing, token: str, now: float) -> ApiKey | None:
    """The key whose unexpired session `token` is, if any."""
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or int(expires_text) < now:
        return None
    expires, match = int(expires_text), None
    for key in ring.keys:
        if hmac.compare_digest(_mac(key, expires), mac):
            match = key
    return match


def caller(request: web.Request) -> tuple[ApiKey | None, bool]:
    """(key, whether it came from the session cookie); raises AccessError."""
    ring = request.app[KEYS]
    if not ring.keys:
        return None, False
    presented = "authorization" in request.headers or "x-api-key" in request.headers
    token = request.cookies.get(COOKIE)
    if presented or token is None:
        key = ring.authenticate(request.headers)
        from_cookie = False
    else:
        key, from_cookie = session_key(ring, token, time.time()), True
        if key is None:
            raise AccessError("the dashboard session has expired or is invalid; sign in again")
    _may_view(key)
    return key, from_cookie


def _may_view(key: ApiKey | None) -> None:
    if key is not None and key.models is not None:
        raise AccessError(
            f"API key {key.name!r} is limited to some models and may not view the dashboard",
            status=403,
        )


def _page(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


async def _report(request: web.Request, store: Store, since: float, now: float) -> Report:
    bucket = request.query.get("bucket_s", "")
    bucket_s = int(bucket) if BUCKET.fullmatch(bucket) and int(bucket) > 0 else None
    async with request.app[GATE]:
        return await summarize(store, since, now, bucket_s)


async def dashboard(request: web.Request) -> web.Response:
    """The HTML dashboard; a sign-in form when a key is needed."""
    try:
        _, signed_in = caller(request)
    except AccessError as exc:
        if exc.status == 401:
            retry = COOKIE in request.cookies or "authorization" in request.headers
            return _page(login_page(exc.message if retry else None), 401)
        return _page(message_page(exc.message), exc.status)
    since_text = request.query.get("since", DEFAULT_SINCE).strip() or DEFAULT_SINCE
    now = time.time()
    try:
        since = parse_since(since_text, now)
    except ValueError as exc:
        return _page(message_page(str(exc)), 400)
    try:
        store = guarded_store(request.app[WRITER], "the dashboard")
        report = await _report(request, store, since, now)
        extra = await _experiments_html(request, store, now)
    except RequestError as exc:
        return _page(message_page(exc.message), exc.status)
    return _page(dashboard_page(report, since_text, signed_in, extra))


async def _experiments_html(request: web.Request, store: Store, now: float) -> str:
    from tierwise.drift.audit import read_calibrations
    from tierwise.experiments.status import experiment_report
    from tierwise.observability.experiments_panel import calibrations_section, experiments_section

    states = request.app[GATEWAY].experiments.states()
    async with request.app[GATE]:
        reports = [await experiment_report(store, s, now) for s in states]
        calibrations = await read_calibrations(store, limit=20)
    return experiments_section(reports) + calibrations_section(calibrations)


async def data_json(request: web.Request) -> web.Response:
    """The report as JSON (`?since=24h`, optional `bucket_s`)."""
    caller(request)
    now = time.time()
    try:
        since = parse_since(request.query.get("since", DEFAULT_SINCE), now)
    except ValueError as exc:
        raise RequestError(str(exc), param="since") from None
    store = guarded_store(request.app[WRITER], "the dashboard")
    report = await _report(request, store, since, now)
    return json_response(report.to_json(), headers={"cache-control": "no-store"})


def _same_origin(request: web.Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise AccessError("cross-origin form post refused", status=403)


def _see_dashboard() -> web.Response:
    return web.Response(status=303, headers={"location": "/dashboard", **PAGE_HEADERS})


async def login(request: web.Request) -> web.Response:
    """Check a key posted from the sign-in form and set the session cookie."""
    _same_origin(request)
    ring = request.app[KEYS]
    if not ring.keys:
        return _see_dashboard()
    try:
        presented = (await request.post()).get("key")
    except (ValueError, UnicodeDecodeError, AssertionError, HttpProcessingError):
        raise RequestError("the sign-in form could not be read") from None
    try:
        if not isinstance(presented, str) or not presented.strip():
            raise AccessError("enter an API key")
        key = ring.authenticate({"x-api-key": presented.strip()})
        _may_view(key)
    except AccessError as exc:
        return _page(login_page(exc.message), exc.status)
    if key is None:
        return _see_dashboard()
    expires = int(time.time()) + SESSION_S
    response = _see_dashboard()
    response.set_cookie(
        COOKIE,
        session_token(key, expires),
        max_age=SESSION_S,
        path="/dashboard",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    _same_origin(request)
    response = _see_dashboard()
    response.del_cookie(COOKIE, path="/dashboard")
    return response
