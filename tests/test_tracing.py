"""OpenTelemetry spans made from request records."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import GatewayFactory
from tierwise import ChatRequest, Message
from tierwise.observability.tracing import RecordTracer
from tierwise.testing import FakeUpstream


async def test_spans_for_request_routing_attempts_and_checks(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = RecordTracer(provider)
    gateway = make_gateway(routes={"auto": {"router": "heuristic", "checks": ["punt"]}})
    gateway.sinks.append(tracer.observe)
    upstream.add_fault("500", model="cheap-model", times=2)
    await gateway.chat(ChatRequest([Message("user", "hello")]))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["tierwise.request"]
    assert root.attributes is not None and root.attributes["tierwise.attempts"] == 3
    assert spans["tierwise.route"].parent is not None
    assert spans["tierwise.route"].parent.span_id == root.context.span_id
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert [s.attributes["gen_ai.request.model"] for s in chats if s.attributes] == [
        "cheap-model",
        "cheap-model",
        "strong-model",
    ]
    assert [s.attributes.get("tierwise.trigger") for s in chats if s.attributes] == [
        "upstream_5xx",
        "upstream_5xx",
        None,
    ]
    assert (
        chats[-1].attributes is not None and chats[-1].attributes["gen_ai.usage.output_tokens"] > 0
    )
    assert "tierwise.check punt" in spans
    assert all(s.context.trace_id == root.context.trace_id for s in exporter.get_finished_spans())
    tracer.shutdown()
