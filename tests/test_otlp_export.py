"""Traces exported over OTLP/HTTP by a running gateway, decoded by a real receiver."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from openai import AsyncOpenAI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.helpers import gateway_data
from tierwise import parse_config
from tierwise.errors import ConfigError
from tierwise.observability.tracing import traces_endpoint
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

SECRET = "sk-ant-test"
PROMPT = "a prompt that stays out of traces"


@dataclass(slots=True)
class Exported:
    """One received span with its resource attributes."""

    span: Span
    resource: dict[str, Any]

    @property
    def attributes(self) -> dict[str, Any]:
        return values(self.span.attributes)


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1; `done` is set once `expected` request
    spans have arrived."""

    expected: int = 1
    status: int = 200
    spans: list[Exported] = field(default_factory=list)
    posts: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.status != 200:
            self.done.set()
            return web.Response(status=self.status)
        message = ExportTraceServiceRequest.FromString(body)
        for resource_spans in message.resource_spans:
            resource = values(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(Exported(s, resource) for s in scope_spans.spans)
        if sum(e.span.name == "tierwise.request" for e in self.spans) >= self.expected:
            self.done.set()
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """The receiver's base URL (no path) while the block runs."""
        app = web.Application()
        app.router.add_post("/v1/traces", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()


def values(attributes: Any) -> dict[str, Any]:
    """OTLP key-values as a plain dict."""
    out: dict[str, Any] = {}
    for item in attributes:
        assert isinstance(item, KeyValue)
        kind = item.value.WhichOneof("value")
        out[item.key] = getattr(item.value, kind) if kind else None
    return out


def traced_config(upstream: FakeUpstream, endpoint: str) -> Any:
    """The cheap tier on OpenAI-style `mini`, the strong tier on Anthropic `claude`."""
    telemetry = {"otlp_endpoint": endpoint, "service_name": "tierwise-under-test"}
    tiers = {"cheap": ["mini"], "strong": ["claude"]}
    return parse_config(gateway_data(upstream.base_url, tiers=tiers, telemetry=telemetry))


async def chat(client: AsyncOpenAI) -> tuple[str, Any]:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": PROMPT}]
    )
    return raw.headers["x-request-id"], raw.parse().usage


def trace_of(spans: list[Exported], request_id: str) -> list[Exported]:
    roots = [
        e
        for e in spans
        if e.span.name == "tierwise.request" and e.attributes["tierwise.request_id"] == request_id
    ]
    assert len(roots) == 1
    return [e for e in spans if e.span.trace_id == roots[0].span.trace_id]


def check_tree(trace: list[Exported]) -> tuple[Exported, list[Exported]]:
    """The root has no parent; the routing and attempt spans are its children."""
    (root,) = [e for e in trace if e.span.name == "tierwise.request"]
    (route,) = [e for e in trace if e.span.name == "tierwise.route"]
    chats = sorted(
        (e for e in trace if e.span.name.startswith("chat ")),
        key=lambda e: e.span.start_time_unix_nano,
    )
    assert root.span.parent_span_id == b""
    assert route.span.parent_span_id == root.span.span_id
    assert route.attributes["tierwise.route.target"] == "cheap"
    for attempt in chats:
        assert attempt.span.parent_span_id == root.span.span_id
        assert attempt.span.kind == Span.SpanKind.SPAN_KIND_CLIENT
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
        assert attempt.span.name == "chat " + attempt.attributes["gen_ai.request.model"]
    return root, chats


def check_usage(attempt: Exported, usage: Any) -> None:
    assert attempt.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attempt.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert usage.completion_tokens > 0


async def test_requests_and_fallbacks_reach_an_otlp_receiver(upstream: FakeUpstream) -> None:
    receiver = OtlpReceiver(expected=2)
    async with receiver.serving() as endpoint:
        config = traced_config(upstream, endpoint)
        async with (
            running(config) as live,
            AsyncOpenAI(base_url=live.base_url + "/v1", api_key="x", max_retries=0) as client,
        ):
            plain_id, plain_usage = await chat(client)
            upstream.add_fault("500", model="cheap-model", times=2)
            fallback_id, fallback_usage = await chat(client)
        await asyncio.wait_for(receiver.done.wait(), timeout=10)

    assert {e.resource["service.name"] for e in receiver.spans} == {"tierwise-under-test"}
    port = upstream.port

    root, chats = check_tree(trace_of(receiver.spans, plain_id))
    assert root.attributes["tierwise.attempts"] == 1
    (only,) = chats
    assert only.attributes["gen_ai.provider.name"] == "openai"
    assert only.attributes["gen_ai.system"] == "openai"
    assert only.attributes["gen_ai.request.model"] == "cheap-model"
    assert (only.attributes["server.address"], only.attributes["server.port"]) == (
        "127.0.0.1",
        port,
    )
    assert "error.type" not in only.attributes
    check_usage(only, plain_usage)

    root, chats = check_tree(trace_of(receiver.spans, fallback_id))
    assert root.attributes["tierwise.attempts"] == 3
    assert root.attributes["tierwise.deployment"] == "claude"
    assert [c.attributes["gen_ai.request.model"] for c in chats] == [
        "cheap-model",
        "cheap-model",
        "claude-model",
    ]
    assert [c.attributes.get("error.type") for c in chats] == [
        "upstream_5xx",
        "upstream_5xx",
        None,
    ]
    assert [c.span.status.code for c in chats] == [
        Status.StatusCode.STATUS_CODE_ERROR,
        Status.StatusCode.STATUS_CODE_ERROR,
        Status.StatusCode.STATUS_CODE_UNSET,
    ]
    assert chats[0].attributes["http.response.status_code"] == 500
    claude = chats[-1]
    assert claude.attributes["gen_ai.provider.name"] == "anthropic"
    assert claude.attributes["server.port"] == port
    check_usage(claude, fallback_usage)

    exported = repr([(e.span.name, e.attributes) for e in receiver.spans])
    assert SECRET not in exported and PROMPT not in exported


async def test_a_failing_receiver_never_fails_a_request(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    receiver = OtlpReceiver(status=503)
    async with receiver.serving() as endpoint:
        config = traced_config(upstream, endpoint + "/v1/traces")
        async with (
            running(config) as live,
            AsyncOpenAI(base_url=live.base_url + "/v1", api_key="x", max_retries=0) as client,
        ):
            for _ in range(3):
                _, usage = await chat(client)
                assert usage.completion_tokens > 0
        await asyncio.wait_for(receiver.done.wait(), timeout=10)
    assert receiver.posts >= 1 and receiver.spans == []


async def test_the_standard_endpoint_variable_is_honoured(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = OtlpReceiver()
    async with receiver.serving() as endpoint:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        async with (
            running(parse_config(gateway_data(upstream.base_url))) as live,
            AsyncOpenAI(base_url=live.base_url + "/v1", api_key="x", max_retries=0) as client,
        ):
            request_id, _ = await chat(client)
        await asyncio.wait_for(receiver.done.wait(), timeout=10)
    root, _ = check_tree(trace_of(receiver.spans, request_id))
    assert root.resource["service.name"] == "tierwise"


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
        ("http://collector:4318/custom/path", "http://collector:4318/custom/path"),
    ],
)
def test_endpoint_is_a_base_or_the_traces_url(given: str, url: str) -> None:
    assert traces_endpoint(given) == url


@pytest.mark.parametrize("given", ["collector:4318", "grpc://collector:4317", "/v1/traces"])
def test_endpoint_must_be_an_http_url(given: str) -> None:
    with pytest.raises(ConfigError, match=r"telemetry\.otlp_endpoint"):
        traces_endpoint(given)


def test_gateway_without_telemetry_does_not_import_opentelemetry() -> None:
    script = (
        "import sys\n"
        "from tierwise import parse_config\n"
        "from tierwise.server.run import build\n"
        "deployment = {'model': 'm', 'api_base': 'http://127.0.0.1:9/v1'}\n"
        "config = parse_config({'deployments': {'m': deployment}, 'store': {'enabled': False}})\n"
        "build(config)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
