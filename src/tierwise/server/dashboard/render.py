"""The dashboard's pages from Jinja2 templates (shipped in `templates/`), with
autoescaping on: every name, message and prompt on a page is text, never markup.

The pages run no scripts; their one inline stylesheet is allowed by its hash in
the content security policy.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from tierwise.observability.formatting import ms, usd, when
from tierwise.server.dashboard.charts import px
from tierwise.server.dashboard.experiments import CALIBRATION_COLUMNS, VARIANT_COLUMNS
from tierwise.server.dashboard.explorer import DetailView, RequestLine
from tierwise.server.dashboard.filters import REFRESH_S, Filters
from tierwise.server.dashboard.views import RANGES, Page

PROMPT_CHARS = 500
CSS = files("tierwise.server.dashboard").joinpath("templates/dashboard.css").read_text("utf-8")
STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
DEFAULT_SINCE = "24h"
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
"""A query parameter's whole number (bucket seconds, limits, offsets)."""


def html_response(body: str, status: int = 200) -> web.Response:
    """A dashboard page, with the headers every page carries."""
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tierwise.server.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(px=px, ms=ms, usd=usd, when=when)
    env.globals.update(
        css=Markup(CSS),
        ranges=RANGES,
        prompt_chars=PROMPT_CHARS,
        variant_columns=VARIANT_COLUMNS,
        calibration_columns=CALIBRATION_COLUMNS,
        refresh_choices=REFRESH_S,
    )
    return env


def _render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def login_page(problem: str | None = None) -> str:
    """The sign-in form, with what went wrong last time if anything."""
    return _render("login.html", problem=problem)


def message_page(text: str) -> str:
    return _render("message.html", message=text)


def dashboard_page(page: Page, filters: Filters | None = None) -> str:
    return _render("dashboard.html", page=page, filters=filters)


def requests_page(
    filters: Filters, lines: list[RequestLine], total: int, limit: int, offset: int, more: bool
) -> str:
    """A page of the request explorer's list."""
    return _render(
        "requests.html",
        filters=filters,
        lines=lines,
        total=total,
        limit=limit,
        offset=offset,
        more=more,
    )


def request_page(detail: DetailView) -> str:
    """One request in the explorer."""
    return _render("request.html", detail=detail, filters=None)
