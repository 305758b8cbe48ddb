"""The OpenAI wire package: both directions meet, validation names the field,
and the OpenAPI document's request schemas are the models' own."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import tierwise.testing._fake_wire as fake_wire
from tierwise.errors import RequestError, UpstreamServerError
from tierwise.server.openapi import OPENAPI
from tierwise.streaming import Assembler
from tierwise.types import (
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from tierwise.wire.openai import inbound, outbound
from tierwise.wire.openai.models import OpenAIChatCompletion, OpenAIChatRequest
from tierwise.wire.schema import component_schemas

HI = [{"role": "user", "content": "hi"}]


def refused(body: Any) -> RequestError:
    with pytest.raises(RequestError) as caught:
        inbound.decode_request(body)
    return caught.value


def test_a_request_survives_the_trip_through_the_gateway() -> None:
    """Client body -> ChatRequest -> upstream body -> ChatRequest: nothing lost."""
    body = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        "max_completion_tokens": 20.0,
        "temperature": 0.5,
        "stop": "END",
        "n": 2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "top_logprobs": 3,
        "user": "u1",
        "seed": 7,
    }
    request, stream, _ = inbound.decode_request(body)
    assert request.max_tokens == 20 and isinstance(request.max_tokens, int) and not stream
    upstream = outbound.encode_request(request, "gpt-4o-mini")
    again, _, _ = inbound.decode_request({**upstream, "model": "auto"})
    assert again == request
    assert upstream["seed"] == 7 and upstream["stop"] == ["END"]


def test_an_answer_survives_the_trip_back() -> None:
    call = ToolCall("c1", "lookup", '{"q": 1}')
    message = Message("assistant", "hello", tool_calls=[call])
    logprobs = [TokenLogprob("hel", -0.1)]
    response = ChatResponse("id", "m", [Choice(0, message, "tool_calls", logprobs)], Usage(9, 3, 2))
    body = inbound.encode_response(response, "chatcmpl-1", "m", 5)
    back = outbound.decode_response(body, "m")
    assert back.choices[0].message.content == "hello"
    assert back.tool_calls() == [call] and back.choices[0].logprobs == logprobs
    assert back.usage == Usage(9, 3, 2) and back.choices[0].finish_reason == "tool_calls"


def test_stream_chunks_survive_the_trip_back() -> None:
    deltas = [
        StreamDelta(role="assistant"),
        StreamDelta(text="Hel"),
        StreamDelta(tool_calls=[ToolCallDelta(0, "c1", "f", '{"a"')]),
        StreamDelta(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
        StreamDelta(finish_reason="tool_calls"),
    ]
    sent, received = Assembler(), Assembler()
    for delta in deltas:
        sent.add(delta)
        for back in outbound.decode_chunk(inbound.encode_chunk(delta, "c", "m", 0)):
            received.add(back)
    usage = inbound.encode_usage_chunk(Usage(4, 2), "c", "m", 0)
    for back in outbound.decode_chunk(usage):
        received.add(back)
    assert received.response("m").choices == sent.response("m").choices
    assert received.usage == Usage(4, 2)


def test_stream_events_end_at_done_and_raise_upstream_errors() -> None:
    assert outbound.decode_event("[DONE]") is None
    error = '{"error": {"message": "the model is overloaded", "type": "server_error"}}'
    with pytest.raises(UpstreamServerError, match="overloaded"):
        outbound.decode_event(error)


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"model": "auto", "messages": []}, "messages", "at least 1 item"),
        ({"messages": HI}, "model", "Field required"),
        ({"model": "auto", "messages": [{"role": "robot"}]}, "messages[0].role", "'user'"),
        ({"model": "auto", "messages": HI, "temperature": "hot"}, "temperature", "number"),
        ({"model": "auto", "messages": HI, "temperature": 2.5}, "temperature", "less than"),
        ({"model": "auto", "messages": HI, "n": 1.5}, "n", "integer"),
        ({"model": "auto", "messages": HI, "stream": "yes"}, "stream", "boolean"),
        ({"model": "auto", "messages": HI, "max_tokens": 2**63}, "max_tokens", "less than"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content",
            "'messages[0].content[0].image_url': Field required",
        ),
        (
            {"model": "auto", "messages": HI, "tool_choice": {"function": {}}},
            "tool_choice",
            "'tool_choice.function.name': Field required",
        ),
        ([HI], "body", "must be an object"),
    ],
)
def test_invalid_requests_name_the_field(body: Any, param: str, needle: str) -> None:
    error = refused(body)
    assert error.param == param and needle in error.message, error.message
    assert "OpenAI" not in error.message  # no model class names


def test_content_that_is_neither_text_nor_parts_names_both_choices() -> None:
    error = refused({"model": "auto", "messages": [{"role": "user", "content": 5}]})
    assert "valid string" in error.message and "valid list" in error.message


def test_openapi_chat_schemas_are_the_models() -> None:
    components = OPENAPI["components"]["schemas"]
    generated = component_schemas(OpenAIChatRequest, OpenAIChatCompletion)
    assert {name: components[name] for name in generated} == generated
    assert components["OpenAIChatRequest"]["required"] == ["model", "messages"]


def test_the_fake_upstreams_codec_stays_independent() -> None:
    """The fakes (OpenAI, Anthropic, Azure, Gemini, Bedrock, embeddings) speak their
    formats from their own code, so no codec is tested against itself: every module of
    `tierwise.testing` imports nothing of tierwise outside that package."""
    package = Path(inspect.getfile(fake_wire)).parent
    modules = sorted(package.glob("*.py"))
    assert {"_fake_wire.py", "_fake_gemini.py", "_fake_bedrock.py"} <= {m.name for m in modules}
    outside = []
    for module in modules:
        tree = ast.parse(module.read_text())
        imported = [
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        ] + [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        outside += [
            f"{module.name}: {name}"
            for name in imported
            if name.startswith("tierwise") and not name.startswith("tierwise.testing")
        ]
    assert not outside
