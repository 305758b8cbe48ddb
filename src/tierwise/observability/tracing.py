"""OpenTelemetry spans built from finished request records.

Spans are made after the fact, with the recorded start times and durations, so
the request path does no tracing work at all; nothing is exported unless
configured. Attribute names follow the GenAI semantic conventions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from tierwise.config import GatewayConfig
from tierwise.errors import ConfigError
from tierwise.providers.registry import ANTHROPIC_BASE, OPENAI_BASE
from tierwise.record import AttemptRecord, RequestRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

NS = 1_000_000_000
TRACES_PATH = "/v1/traces"
DEFAULT_BASES = {"openai": OPENAI_BASE, "anthropic": ANTHROPIC_BASE}
DEFAULT_PORTS = {"http": 80, "https": 443}
Servers = Mapping[str, tuple[str, int]]
log = logging.getLogger("tierwise.tracing")


class RecordTracer:
    """A record sink that emits: request -> routing, attempts -> checks.

    `servers` maps deployment names to the (host, port) of their upstream."""

    def __init__(self, provider: TracerProvider, servers: Servers | None = None) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("tierwise")
        self.servers: Servers = servers or {}

    @classmethod
    def exporting(
        cls, exporter: SpanExporter, service_name: str = "tierwise", servers: Servers | None = None
    ) -> RecordTracer:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, servers)

    @classmethod
    def otlp(
        cls, endpoint: str | None, service_name: str = "tierwise", servers: Servers | None = None
    ) -> RecordTracer:
        """Export over OTLP/HTTP to `endpoint` (see `traces_endpoint`); with None, the
        exporter reads the standard `OTEL_EXPORTER_OTLP_*` environment variables."""
        url = None if endpoint is None else traces_endpoint(endpoint)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.exporting(OTLPSpanExporter(endpoint=url), service_name, servers)

    def observe(self, record: RequestRecord) -> None:
        """Emit the record's spans; a failure is logged, never raised to the request."""
        try:
            self._observe(record)
        except Exception:
            log.exception("could not trace request %s", record.request_id)

    def _observe(self, record: RequestRecord) -> None:
        from opentelemetry import trace

        start = int(record.started_at * NS)
        end = start + int(record.latency_ms * NS / 1000)
        root = self.tracer.start_span(
            "tierwise.request", start_time=start, attributes=_request_attributes(record)
        )
        if record.status not in ("ok", "degraded"):
            root.set_status(trace.Status(trace.StatusCode.ERROR, record.error or record.status))
        context = trace.set_span_in_context(root)
        cursor = self._routing(record, start, context)
        for attempt in record.attempts:
            cursor = self._attempt(attempt, cursor, context)
        root.end(end_time=max(end, cursor))

    def _routing(self, record: RequestRecord, start: int, context: Any) -> int:
        decision = record.decision
        if decision is None:
            return start
        end = start + int(decision.latency_ms * NS / 1000)
        span = self.tracer.start_span(
            "tierwise.route",
            context=context,
            start_time=start,
            attributes={
                "tierwise.router": decision.router,
                "tierwise.route.target": decision.target,
                "tierwise.route.reason": decision.reason,
                "tierwise.router.cost_usd": float(decision.cost_usd),
            },
        )
        span.end(end_time=end)
        return end

    def _attempt(self, attempt: AttemptRecord, start: int, context: Any) -> int:
        from opentelemetry import trace

        end = start + int(attempt.latency_ms * NS / 1000)
        attributes = _attempt_attributes(attempt)
        server = self.servers.get(attempt.deployment)
        if server is not None:
            attributes["server.address"], attributes["server.port"] = server
        span = self.tracer.start_span(
            f"chat {attempt.model}",
            context=context,
            kind=trace.SpanKind.CLIENT,
            start_time=start,
            attributes=attributes,
        )
        if attempt.outcome not in ("ok",):
            span.set_status(
                trace.Status(trace.StatusCode.ERROR, attempt.trigger or attempt.outcome)
            )
        child = trace.set_span_in_context(span)
        for check in attempt.checks:
            inner = self.tracer.start_span(
                f"tierwise.check {check.name}",
                context=child,
                start_time=end,
                attributes={
                    "tierwise.check.passed": check.passed,
                    "tierwise.check.cost_usd": float(check.cost_usd),
                },
            )
            inner.end(end_time=end)
        span.end(end_time=end)
        return end

    def shutdown(self) -> None:
        self.provider.shutdown()


def _request_attributes(record: RequestRecord) -> dict[str, Any]:
    cost = record.cost
    attributes: dict[str, Any] = {
        "tierwise.request_id": record.request_id,
        "tierwise.route": record.route,
        "tierwise.status": record.status,
        "tierwise.attempts": len(record.calls),
        "tierwise.cost_usd": float(cost.total_usd),
        "tierwise.router_cost_usd": float(cost.router_usd),
        "tierwise.baseline_usd": float(cost.baseline_usd),
        "tierwise.savings_usd": float(cost.savings_usd),
    }
    if record.final_deployment:
        attributes["tierwise.deployment"] = record.final_deployment
        attributes["tierwise.tier"] = record.final_tier or ""
    return attributes


def _attempt_attributes(attempt: AttemptRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": attempt.provider,
        "gen_ai.system": attempt.provider,
        "gen_ai.request.model": attempt.model,
        "tierwise.deployment": attempt.deployment,
        "tierwise.tier": attempt.tier,
        "tierwise.outcome": attempt.outcome,
        "tierwise.called": attempt.called,
        "tierwise.cost_usd": float(attempt.cost_usd),
    }
    if attempt.trigger:
        attributes["tierwise.trigger"] = attempt.trigger
    if attempt.outcome != "ok":
        attributes["error.type"] = attempt.trigger or attempt.outcome
    if attempt.status is not None:
        attributes["http.response.status_code"] = attempt.status
    if attempt.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = attempt.usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = attempt.usage.output_tokens
        if attempt.usage.cached_input_tokens:
            cached = attempt.usage.cached_input_tokens
            attributes["gen_ai.usage.cache_read.input_tokens"] = cached
    return attributes


def traces_endpoint(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: a base URL (no path) gets `/v1/traces` appended, a URL
    with a path is used as given."""
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"expected an http(s) URL, got {endpoint!r}", key="telemetry.otlp_endpoint"
        )
    if parts.path in ("", "/"):
        parts = parts._replace(path=TRACES_PATH)
    return urlunsplit(parts)


def servers_of(config: GatewayConfig) -> dict[str, tuple[str, int]]:
    """Each deployment's upstream (host, port), where it has a URL."""
    servers: dict[str, tuple[str, int]] = {}
    for name, deployment in config.deployments.items():
        server = _host_port(deployment.api_base or DEFAULT_BASES.get(deployment.provider))
        if server is not None:
            servers[name] = server
    return servers


def _host_port(url: str | None) -> tuple[str, int] | None:
    parts = urlsplit(url or "")
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname and port else None
