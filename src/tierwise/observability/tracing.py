"""OpenTelemetry spans built from finished request records.

Spans are made after the fact, with the recorded start times and durations, so
the request path does no tracing work at all; nothing is exported unless
configured. Attribute names follow the GenAI semantic conventions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tierwise.record import AttemptRecord, RequestRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

NS = 1_000_000_000


class RecordTracer:
    """A record sink that emits: request -> routing, attempts -> checks."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("tierwise")

    @classmethod
    def exporting(cls, exporter: SpanExporter, service_name: str = "tierwise") -> RecordTracer:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    @classmethod
    def otlp(cls, endpoint: str, service_name: str = "tierwise") -> RecordTracer:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.exporting(OTLPSpanExporter(endpoint=endpoint), service_name)

    def observe(self, record: RequestRecord) -> None:
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
        span = self.tracer.start_span(
            f"chat {attempt.model}",
            context=context,
            start_time=start,
            attributes=_attempt_attributes(attempt),
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
    if attempt.status is not None:
        attributes["http.response.status_code"] = attempt.status
    if attempt.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = attempt.usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = attempt.usage.output_tokens
    return attributes
