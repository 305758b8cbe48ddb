"""`POST /v1/responses` through the official `openai` SDK: mapped onto chat, plain and
streamed, function tools round-tripped, `previous_response_id` continued from stored
responses, with the chat path's fallback and accounting."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import openai
import pytest

from tests.helpers import CHEAP_PRICE, STRONG_PRICE, assert_billed_once, settle
from tierwise.server.responses import StoredResponses
from tierwise.server.run import Running
from tierwise.store import Store, from_pusd
from tierwise.testing import FakeUpstream

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def sent_messages(upstream: FakeUpstream) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = upstream.requests[-1].body["messages"]
    return messages


async def test_plain_response_maps_instructions_and_input(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    raw = await oai.responses.with_raw_response.create(
        model="auto", input="hello there", instructions="Be brief.", max_output_tokens=50
    )
    response = raw.parse()
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == "Answer from cheap-model: hello there"
    assert response.model == "cheap-model" and response.output[0].type == "message"
    assert response.usage is not None and response.usage.input_tokens > 0
    assert sent_messages(upstream) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert upstream.requests[-1].body["max_tokens"] == 50
    assert Decimal(raw.headers["x-tierwise-cost-usd"]) > 0


async def test_streamed_events_follow_the_responses_api(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(model="auto", input="stream this one please", stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Answer from cheap-model: stream this one please"
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == text and completed.response.usage is not None


async def test_the_sdk_stream_helper_assembles_the_final_response(
    oai: openai.AsyncOpenAI,
) -> None:
    async with oai.responses.stream(model="auto", input="assemble me") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Answer from cheap-model: assemble me"


async def test_previous_response_id_continues_the_conversation(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    first = await oai.responses.create(model="auto", input="My name is Ann.", instructions="Hi.")
    second = await oai.responses.create(
        model="auto", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert sent_messages(upstream) == [
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    with pytest.raises(openai.NotFoundError) as missing:
        await oai.responses.create(model="auto", input="x", previous_response_id="resp_nope")
    assert missing.value.param == "previous_response_id"
    unstored = await oai.responses.create(model="auto", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        await oai.responses.create(model="auto", input="x", previous_response_id=unstored.id)


async def test_function_call_and_its_output_on_the_next_turn(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    first = await oai.responses.create(
        model="auto", input="Weather in Oslo? [[tool=get_weather]]", tools=[WEATHER]
    )
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.arguments == '{"x": 1}'
    tools = upstream.requests[-1].body["tools"]
    assert tools == [
        {"type": "function", "function": {k: WEATHER[k] for k in WEATHER if k != "type"}}
    ]
    second = await oai.responses.create(
        model="auto",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.output_text.startswith("Answer from cheap-model")
    assistant, tool = sent_messages(upstream)[-2:]
    assert assistant["tool_calls"][0]["id"] == call.call_id
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert tool == {"role": "tool", "content": "sunny", "tool_call_id": call.call_id}


async def test_function_call_input_items_without_a_stored_response(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    items: Any = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": "rainy"},
    ]
    await oai.responses.create(model="auto", input=items, tools=[WEATHER])
    user, assistant, *outputs = sent_messages(upstream)
    assert user == {"role": "user", "content": "Weather?"}
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert [(o["tool_call_id"], o["content"]) for o in outputs] == [
        ("c1", "sunny"),
        ("c2", "rainy"),
    ]


async def test_streamed_function_call(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.responses.create(
        model="auto", input="Weather? [[tool=get_weather]]", tools=[WEATHER], stream=True
    )
    events = [event async for event in stream]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call" and added.item.name == "get_weather"
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert arguments == '{"x": 1}'
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output[0].type == "function_call"


async def test_falls_back_like_chat(oai: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    upstream.set_failure_rate("cheap-model", 1.0, "500")
    raw = await oai.responses.with_raw_response.create(model="auto", input="fall back")
    assert raw.headers["x-tierwise-model"] == "big"
    assert raw.parse().output_text == "Answer from strong-model: fall back"


def priced(usage: Any, price: dict[str, str]) -> Decimal:
    """What `usage` costs at `price` (dollars per million tokens)."""
    tokens = usage.input_tokens * Decimal(price["input"])
    return (tokens + usage.output_tokens * Decimal(price["output"])) / 10**6


async def respond(oai: openai.AsyncOpenAI, stream: bool, text: str) -> tuple[Any, Any]:
    """The response headers and the final response, plain or from the streamed
    `response.completed` event."""
    if not stream:
        raw = await oai.responses.with_raw_response.create(model="auto", input=text)
        return raw.headers, raw.parse()
    streamed = await oai.responses.with_raw_response.create(model="auto", input=text, stream=True)
    events = [event async for event in streamed.parse()]
    assert events[-1].type == "response.completed"
    return streamed.headers, events[-1].response


async def logged(served: Running, headers: Any) -> tuple[Store, Any, list[Any]]:
    """The store, and the logged request and attempts of the answer with `headers`."""
    store = await settle(served, 1)
    assert await store.count_requests() == 1
    request_id = headers["x-tierwise-request-id"]
    detail = await store.request_detail(request_id)
    assert detail is not None
    return store, detail, list(await store.attempts_of([request_id]))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_response_is_logged_with_its_cost_and_attempts(
    served: Running, oai: openai.AsyncOpenAI, stream: bool
) -> None:
    headers, response = await respond(oai, stream, "log this answer")
    _, detail, attempts = await logged(served, headers)
    cost = priced(response.usage, CHEAP_PRICE)
    assert cost > 0 and from_pusd(detail["cost_pusd"]) == cost
    if stream:
        assert "x-tierwise-cost-usd" not in headers, "a stream's cost is known at its end"
    else:
        assert Decimal(headers["x-tierwise-cost-usd"]) == cost
    assert detail["calls"] == len(attempts) == int(headers["x-tierwise-attempts"]) == 1
    assert detail["status"] == headers["x-tierwise-status"] == "ok"
    assert detail["final_deployment"] == headers["x-tierwise-model"] == "mini"
    usage = response.usage
    assert (detail["input_tokens"], detail["output_tokens"]) == (
        usage.input_tokens,
        usage.output_tokens,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("fault", ["500", "empty"])
async def test_a_fallback_bills_each_attempt_once(
    served: Running, oai: openai.AsyncOpenAI, upstream: FakeUpstream, stream: bool, fault: str
) -> None:
    """The cheap deployment fails (a 500 costs nothing, a blank answer is billed) and
    the strong one answers: the request costs its attempts, each counted once."""
    upstream.set_failure_rate("cheap-model", 1.0, fault)
    headers, response = await respond(oai, stream, "fall back and bill")
    assert response.output_text == "Answer from strong-model: fall back and bill"
    _, detail, attempts = await logged(served, headers)
    blank = fault == "empty"
    answered = assert_billed_once(
        detail, attempts, headers, upstream, blank_billed=blank, plain=not stream
    )
    assert from_pusd(answered["cost_pusd"]) == priced(response.usage, STRONG_PRICE)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto", "input": []}, "input"),
        ({"model": "auto", "input": "x", "tools": [{"type": "web_search"}]}, "tools"),
        ({"model": "auto", "input": [{"type": "function_call_output"}]}, "input"),
        ({"model": "auto", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ],
)
async def test_bad_requests_are_refused_in_openai_format(
    served: Running, upstream: FakeUpstream, body: dict[str, Any], param: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(served.base_url + "/v1/responses", json=body) as response,
    ):
        error = (await response.json())["error"]
    assert response.status == 400 and error["param"] == param
    assert upstream.count() == 0


def test_stored_responses_expire_and_stay_bounded() -> None:
    now = [0.0]
    stored = StoredResponses(ttl_s=10, capacity=2, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        stored.put(name, [])
    assert stored.get("a") is None and stored.get("b") == []
    now[0] = 10.0
    assert stored.get("c") is None
