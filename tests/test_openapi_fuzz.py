"""Property-based fuzzing of the running server from its own OpenAPI document.

The server runs on the test's event loop against an always-healthy fake
upstream; schemathesis (synchronous, on `requests`) runs in a worker thread,
so the loop keeps serving while hypothesis generates and sends cases. With no
upstream failures no 5xx is legitimate. Every case runs schemathesis's checks:
no server error, documented statuses, content types, headers and bodies,
schema-valid requests accepted and schema-invalid ones refused, and the key
enforced. Failures are collected rather than raised, so one run reports them
all and hypothesis never shrinks against the network.

Positive cases come from a profile that closes request objects
(`additionalProperties: false`): the decoders ignore unknown keys, and
generating them only slows the run. Negative cases use the document as served.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.helpers import eventually, gateway_config
from tierwise.gateway import Gateway
from tierwise.server import run
from tierwise.server.app import create_app
from tierwise.server.auth import KeyRing
from tierwise.server.openapi import OPENAPI, add_openapi_route
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

KEY = "sk-tw-fuzz-5f1d0c9a7e"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_EXAMPLES = int(os.environ.get("TIERWISE_FUZZ_EXAMPLES", "30"))
NAMES = ["auto", "cheap", "strong", "mini", "big", "claude"]
CHAT_PATHS = ("/v1/chat/completions", "/v1/messages")
DASHBOARD_PATHS = (
    "/dashboard",
    "/dashboard/data.json",
    "/dashboard/requests",
    "/dashboard/requests/{request_id}",
)
# what a dashboard page refuses that the schema cannot know: a time, a filter value no
# request has, a page size out of range
DASHBOARD_REFUSALS = ("since", "as a time", "unknown ", "refresh is", "whole number")
REQUEST_MESSAGES = ("OpenAIMessage", "AnthropicUserMessage", "AnthropicAssistantMessage")
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def with_openapi(create: Callable[..., Any]) -> Callable[..., Any]:
    """`create_app` with `/openapi.json`, whether or not it mounts it itself."""

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = create(*args, **kwargs)
        if not any(r.canonical == "/openapi.json" for r in app.router.resources()):
            add_openapi_route(app)
        return app

    return create_app


@pytest.fixture
async def server(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    monkeypatch.setattr(run, "create_app", with_openapi(create_app))
    config = gateway_config(upstream.base_url, server={"api_keys": [{"name": "fuzz", "key": KEY}]})
    async with running(config) as live, aiohttp.ClientSession() as session:

        async def ready() -> bool:
            async with session.get(live.base_url + "/ready") as response:
                return response.status == 200

        await eventually(ready, what="the server ready")
        yield live


def closed(node: Any) -> Any:
    """`node` with every object schema that lists properties closed."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: closed(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def fuzz_schema(document: dict[str, Any], mode: GenerationMode) -> Any:
    """The served document; closed request objects for positive cases."""
    document = copy.deepcopy(document)
    schemas = document["components"]["schemas"]
    for name in schemas:
        closes = name.endswith(("Request", "Block")) or name in REQUEST_MESSAGES
        if closes and mode is GenerationMode.POSITIVE:
            schemas[name] = closed(schemas[name])
    return schemathesis.openapi.from_dict(document)


def signature(record: logging.LogRecord) -> tuple[str, str] | None:
    """(innermost tierwise function, exception type) of a logged exception."""
    if not record.exc_info or record.exc_info[1] is None:
        return None
    where, tb = "", record.exc_info[2]
    for frame in _frames(tb):
        if "/tierwise/" in frame.f_code.co_filename:
            where = frame.f_code.co_name
    return where, type(record.exc_info[1]).__name__


def _frames(tb: TracebackType | None) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def known_model(case: Any, name: str) -> None:
    """Most generated model names are unknown (404): name real ones too."""
    body = case.body
    chat = case.path in CHAT_PATHS and isinstance(body, dict)
    if chat and isinstance(body.get("model"), str) and body["model"]:
        body["model"] = name


@dataclass
class Fuzzer:
    """Runs every operation's cases; the key probes (`ignored_auth`) once an
    operation has answered 2xx."""

    base_url: str
    records: list[logging.LogRecord]
    session: requests.Session = field(default_factory=requests.Session)
    failures: list[str] = field(default_factory=list)
    known: set[str] = field(default_factory=set)
    auth_checked: set[str] = field(default_factory=set)

    def logged(self, response: Any) -> logging.LogRecord | None:
        """The server's error record for the request that got `response`."""
        rid = (response.headers.get("x-request-id") or [None])[0]
        return next((r for r in list(self.records) if r.args == (rid,)), None)

    def known_bug(self, response: Any) -> str | None:
        record = self.logged(response) if response.status_code == 500 else None
        return KNOWN_BUGS.get(signature(record) or ("", "")) if record else None

    def tolerated(self, case: Any, response: Any) -> list[Any]:
        """Refusals of schema-valid requests that no schema can foresee."""
        if response.status_code == 404 and case.path == "/dashboard/requests/{request_id}":
            return [positive_data_acceptance]  # an id no request has
        if response.status_code != 400:
            return []
        text = response.content.decode(errors="replace")
        upstream = case.path in CHAT_PATHS and ('"attempts"' in text or "(needs: " in text)
        since = case.path in DASHBOARD_PATHS and any(r in text for r in DASHBOARD_REFUSALS)
        form = case.path == "/dashboard/login" and "could not be read" in text
        return [positive_data_acceptance] if upstream or since or form else []

    def run(self, case: Any, mode: GenerationMode) -> None:
        kwargs = {"base_url": self.base_url, "session": self.session, "headers": AUTH}
        response = case.call(timeout=30, **kwargs)
        bug = self.known_bug(response)
        if bug is not None:
            self.known.add(bug)
            return
        label = case.operation.label
        excluded = self.tolerated(case, response)
        if label in self.auth_checked:
            excluded.append(ignored_auth)
        try:
            case.validate_response(
                response, excluded_checks=excluded, headers=AUTH, transport_kwargs=kwargs
            )
            if 200 <= response.status_code < 300:
                self.auth_checked.add(label)
        except (Exception, BaseExceptionGroup) as exc:
            record = self.logged(response)
            exc_info = record.exc_info if record else None
            trace = logging.Formatter().formatException(exc_info) if exc_info else ""
            self.failures.append(f"{case.operation.label} [{mode.value}]\n{exc}\n{trace}")

    def operation(self, operation: Any, mode: GenerationMode) -> None:
        @given(case=operation.as_strategy(generation_mode=mode), name=st.sampled_from(NAMES))
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any, name: str) -> None:
            known_model(case, name)
            self.run(case, mode)

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label

    def all(self) -> None:
        document = self.session.get(self.base_url + "/openapi.json", timeout=10).json()
        try:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for result in fuzz_schema(document, mode).get_all_operations():
                    self.operation(result.ok(), mode)
        finally:
            self.session.close()


def unexpected_errors(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.levelno >= logging.ERROR
        and r.name.startswith(("tierwise", "aiohttp"))
        and KNOWN_BUGS.get(signature(r) or ("", "")) is None
    ]


async def test_fuzz_every_operation(server: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fuzzer = Fuzzer(server.base_url, caplog.records)
    await asyncio.to_thread(fuzzer.all)
    failures = fuzzer.failures
    if os.environ.get("TIERWISE_FUZZ_REPORT"):
        with open(os.environ["TIERWISE_FUZZ_REPORT"], "w") as report:
            report.write("\n\n=====\n".join([*sorted(fuzzer.known), *failures]))
    assert not failures, f"{len(failures)} failing cases:\n\n" + "\n\n".join(failures[:10])
    assert not unexpected_errors(caplog.records)


async def test_document_is_served_without_a_key(server: Running) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base_url + "/openapi.json") as response,
    ):
        assert response.status == 200
        assert await response.json() == OPENAPI


def test_fuzz_profile_only_closes_objects() -> None:
    profile = closed(copy.deepcopy(OPENAPI["components"]["schemas"]["OpenAIChatRequest"]))
    assert profile["additionalProperties"] is False
    assert profile["properties"]["metadata"]["additionalProperties"] == {"type": "string"}


def test_document_is_valid_openapi_3_1() -> None:
    schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI)).validate()


async def test_document_covers_every_route() -> None:
    gateway = Gateway(gateway_config("http://127.0.0.1:9"))
    app = with_openapi(create_app)(gateway, KeyRing([]), max_body_bytes=1024)
    await gateway.aclose()
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert routes == {(m, path) for path, item in OPENAPI["paths"].items() for m in item}


async def send(live: Running, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, JSON body or text) of one request with the key."""
    headers = {**AUTH, **kwargs.pop("headers", {})}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, live.base_url + path, headers=headers, **kwargs) as response,
    ):
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


HI = [{"role": "user", "content": "hi"}]
OPENAI = {"model": "auto", "messages": HI}
ANTHROPIC = {"model": "auto", "max_tokens": 20, "messages": HI}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {**OPENAI, "max_tokens": 20.0, "n": 1.0, "top_logprobs": 2.0}),
        ("/v1/messages", {**ANTHROPIC, "max_tokens": 20.0}),
    ],
    ids=["openai", "anthropic"],
)
async def test_integral_numbers_are_integers(server: Running, path: str, body: Any) -> None:
    """Regression: `20.0` is an integer in JSON Schema but was refused with 400."""
    status, _ = await send(server, "POST", path, json=body)
    assert status == 200


REFUSED = [
    ("/v1/chat/completions", {**OPENAI, "max_completion_tokens": 5, "max_tokens": 0}, "max_tokens"),
    ("/v1/chat/completions", {**OPENAI, "max_tokens": 2**64 - 1}, "max_tokens"),
    ("/v1/chat/completions", {**OPENAI, "max_completion_tokens": 1e20}, "max_completion_tokens"),
    ("/v1/messages", {**ANTHROPIC, "max_tokens": 10**30}, "max_tokens"),
    ("/v1/messages", {**ANTHROPIC, "messages": [{"role": "user", "content": []}]}, "content"),
    (
        "/v1/chat/completions",
        {**OPENAI, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content",
    ),
    (
        "/v1/chat/completions",
        {
            **OPENAI,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}],
        },
        "messages[0].content",
    ),
    ("/v1/chat/completions", {**OPENAI, "tool_choice": {"function": "f"}}, "tool_choice"),
    (
        "/v1/chat/completions",
        {**OPENAI, "response_format": {"type": "json_schema", "json_schema": 5}},
        "response_format",
    ),
]


@pytest.mark.parametrize("model", ["mini", "claude"])
@pytest.mark.parametrize(("path", "body", "param"), REFUSED)
async def test_decoders_refuse_what_the_gateway_cannot_send(
    server: Running, upstream: FakeUpstream, model: str, path: str, body: Any, param: str
) -> None:
    """Regressions: these reached a deployment and came back as a 500 (64-bit
    overflow when encoding; malformed parts or options in the Anthropic adapter)
    or as an upstream 400, or went unchecked (`max_tokens` beside
    `max_completion_tokens`); the floats beyond 64 bits stay refused now that
    integral floats are integers."""
    status, error = await send(server, "POST", path, json={**body, "model": model})
    assert status == 400 and upstream.count() == 0
    if path == "/v1/messages":
        assert error["type"] == "error" and param in error["error"]["message"]
    else:
        assert error["error"]["param"] == param


def known_bug(reason: str) -> pytest.MarkDecorator:
    """A bug outside the decoders, found by fuzzing; when fixed, this fails:
    drop the mark, and the bug's entry in KNOWN_BUGS."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


MALFORMED_FORM = {
    "data": b"--b\r\n[]--b--\r\n",
    "headers": {"content-type": "multipart/form-data; boundary=b"},
}


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        pytest.param(
            "GET",
            "/dashboard/data.json",
            {"params": {"bucket_s": "\u00b2"}},
            id="bucket_s-superscript",
        ),
        pytest.param(
            "GET",
            "/dashboard",
            {"params": {"bucket_s": "9" * 5000}},
            id="bucket_s-long",
        ),
        pytest.param(
            "GET",
            "/dashboard/data.json",
            {"params": {"bucket_s": "1" + "0" * 22}},
            id="bucket_s-huge",
        ),
        pytest.param(
            "GET",
            "/dashboard/data.json",
            {"params": {"since": "9" * 400 + "d"}},
            id="since-inf",
        ),
        pytest.param(
            "GET",
            "/dashboard",
            {"params": {"since": "0001-01-01T00:00:00+01:00"}},
            id="since-year-0",
        ),
        pytest.param(
            "POST",
            "/dashboard/login",
            MALFORMED_FORM,
            id="login-multipart",
        ),
    ],
)
async def test_bugs_found_outside_the_decoders_stay_fixed(
    server: Running, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    status, _ = await send(server, method, path, **kwargs)
    assert status < 500


async def test_method_not_allowed_names_the_allowed_methods(server: Running) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.delete(server.base_url + "/v1/models", headers=AUTH) as response,
    ):
        assert response.status == 405 and response.headers.get("Allow") == "GET,HEAD"
