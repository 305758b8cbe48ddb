"""The Anthropic wire package: one stop-reason table and one image conversion
serve both directions, and stream events survive the trip through both."""

from __future__ import annotations

from typing import Any

import pytest

from tierwise.errors import RateLimitedError, RequestError
from tierwise.streaming import Assembler
from tierwise.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from tierwise.wire.anthropic import inbound, outbound, shapes
from tierwise.wire.anthropic.events import EventEncoder

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("neutral", ["stop", "length", "tool_calls", "content_filter"])
def test_one_stop_reason_table_serves_both_directions(neutral: str) -> None:
    assert shapes.finish_reason(shapes.stop_reason(neutral)) == neutral


@pytest.mark.parametrize(
    "url", ["data:image/jpeg;base64,QUJD", "https://example.com/cat.png"], ids=["base64", "url"]
)
def test_images_convert_the_same_both_ways(url: str) -> None:
    """An OpenAI image part sent upstream as an Anthropic block, then read back
    by the gateway's Anthropic decoder, is the same part."""
    part = {"type": "image_url", "image_url": {"url": url}}
    request = ChatRequest([Message("user", [part, {"type": "text", "text": "what is it?"}])])
    body = outbound.encode_request(request, "claude", 100)
    again, _ = inbound.decode_request({**body, "model": "auto"})
    assert again.messages == request.messages


def test_an_answer_survives_the_trip_back() -> None:
    call = ToolCall("toolu_1", "lookup", '{"q":1}')
    message = Message("assistant", "hello", tool_calls=[call])
    response = ChatResponse("id", "m", [Choice(0, message, "tool_calls")], Usage(9, 3, 2))
    back = outbound.decode_response(inbound.encode_response(response, "msg_1", "m"), "m")
    assert back.choices == response.choices and back.usage == Usage(9, 3, 2)


def test_stream_events_survive_the_trip_back() -> None:
    deltas = [
        StreamDelta(role="assistant"),
        StreamDelta(text="Hel"),
        StreamDelta(text="lo"),
        StreamDelta(tool_calls=[ToolCallDelta(0, "toolu_1", "f", '{"a"')]),
        StreamDelta(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
        StreamDelta(finish_reason="length"),
    ]
    encoder, decoder = EventEncoder("msg_1", "m"), outbound.StreamDecoder()
    sent, received = Assembler(), Assembler()
    events = encoder.start()
    for delta in deltas:
        sent.add(delta)
        events += encoder.feed(delta)
    encoder.usage = Usage(7, 5)
    for name, data in events + encoder.finish():
        for back in decoder.feed(name, data):
            received.add(back)
    assert decoder.done
    assert received.response("m").choices == sent.response("m").choices
    assert received.usage == Usage(7, 5)


def test_an_error_event_is_classified() -> None:
    error = '{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}'
    with pytest.raises(RateLimitedError):
        outbound.decode_event("error", error, outbound.StreamDecoder())


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"model": "auto", "messages": HI}, "max_tokens: Field required"),
        ({"model": "auto", "max_tokens": 0, "messages": HI}, "max_tokens: Input should be greater"),
        (
            {"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": []}]},
            "messages.0.content: ",
        ),
        (
            {
                "model": "auto",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "x"}]}],
            },
            "messages.0.content.0: ",
        ),
        (
            {
                "model": "auto",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ],
            },
            "messages.0.content.0.source.type: ",
        ),
        ({"model": "auto", "max_tokens": 5, "messages": HI, "tool_choice": {}}, "tool_choice.type"),
        ({"model": "auto", "max_tokens": 5, "messages": HI, "system": [{}]}, "system.0"),
    ],
)
def test_invalid_requests_name_the_field_as_anthropic_does(body: Any, where: str) -> None:
    with pytest.raises(RequestError) as caught:
        inbound.decode_request(body)
    assert caught.value.message.startswith(where), caught.value.message
    assert "Anthropic" not in caught.value.message


def test_integral_numbers_are_integers() -> None:
    request, _ = inbound.decode_request({"model": "auto", "max_tokens": 20.0, "messages": HI})
    assert request.max_tokens == 20 and isinstance(request.max_tokens, int)
