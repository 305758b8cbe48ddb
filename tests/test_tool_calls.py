"""Tool calls across wire formats: a conversation with tool calls that falls back
from an OpenAI upstream to an Anthropic one (and back) keeps its calls, results and
ids, plain and streamed, spoken to by the official SDKs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from tests.helpers import gateway_config
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TIME = {
    "name": "get_time",
    "description": "Local time in a time zone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
}
OPENAI_TOOLS: Any = [{"type": "function", "function": f} for f in (WEATHER, TIME)]
ANTHROPIC_TOOLS: Any = [
    {"name": f["name"], "description": f["description"], "input_schema": f["parameters"]}
    for f in (WEATHER, TIME)
]
CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"})]
FALLBACK = {"retries_per_deployment": 0, "backoff": {"base_s": 0.01, "max_s": 0.02}}

OPENAI_CONVERSATION: Any = [
    {"role": "user", "content": "Weather and time in Rome, then in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_rome1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
            {
                "id": "call.rome/2",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"tz": "Europe/Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_rome1", "content": '{"temp_c": 21}'},
    {
        "role": "tool",
        "tool_call_id": "call.rome/2",
        "content": [{"type": "text", "text": "12:00"}, {"type": "text", "text": "CET"}],
    },
]

ROME, ROME_TZ = {"city": "Rome"}, {"tz": "Europe/Rome"}
ANTHROPIC_CONVERSATION: Any = [
    {"role": "user", "content": "Weather and time in Rome, then in Paris?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking Rome."},
            {"type": "tool_use", "id": "toolu_r1", "name": "get_weather", "input": ROME},
            {"type": "tool_use", "id": "toolu_r2", "name": "get_time", "input": ROME_TZ},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_r1", "content": '{"temp_c": 21}'},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_r2",
                "content": [{"type": "text", "text": "clock"}, {"type": "text", "text": "down"}],
                "is_error": True,
            },
            {"type": "text", "text": "Now Paris, please."},
        ],
    },
]


def _server(upstream: FakeUpstream, first: str, then: str) -> Any:
    """A gateway whose route `auto` tries deployment `first`, then escalates to `then`."""
    config = gateway_config(
        upstream.base_url, tiers={"cheap": [first], "strong": [then]}, fallback=FALLBACK
    )
    return running(config)


@pytest.fixture
async def to_anthropic(upstream: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    """An OpenAI client; the OpenAI upstream (`big`) fails, Anthropic answers."""
    upstream.add_fault("500", model="strong-model")
    async with _server(upstream, "big", "claude") as live:
        url = live.base_url + "/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
            yield client


@pytest.fixture
async def to_openai(upstream: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """An Anthropic client; the Anthropic upstream (`claude`) fails, OpenAI answers."""
    upstream.add_fault("500", model="claude-model")
    async with (
        _server(upstream, "claude", "big") as live,
        anthropic.AsyncAnthropic(base_url=live.base_url, api_key="x", max_retries=0) as client,
    ):
        yield client


def _named(calls: Any) -> list[tuple[str, Any]]:
    """(name, parsed arguments) of an OpenAI message's tool calls."""
    functions = [call.model_dump()["function"] for call in calls]
    return [(f["name"], json.loads(f["arguments"])) for f in functions]


def _sent(upstream: FakeUpstream, path: str) -> dict[str, Any]:
    bodies = [r.body for r in upstream.requests if r.path == path]
    assert bodies, f"nothing reached {path}"
    return bodies[-1]


async def test_openai_conversation_falls_back_to_anthropic(
    to_anthropic: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    upstream.script_tools("claude-model", CALLS)
    raw = await to_anthropic.chat.completions.with_raw_response.create(
        model="auto", messages=OPENAI_CONVERSATION, tools=OPENAI_TOOLS, tool_choice="required"
    )
    assert raw.headers["x-tierwise-model"] == "claude"
    assert raw.headers["x-tierwise-attempts"] == "2"
    choice = raw.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert _named(calls) == CALLS
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("toolu_") for c in calls)

    sent = _sent(upstream, "/v1/messages")
    assert sent["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["input_schema"] == WEATHER["parameters"]
    assistant, results = sent["messages"][1], sent["messages"][2]
    assert [(b["id"], b["input"]) for b in assistant["content"]] == [
        ("call_rome1", {"city": "Rome"}),
        ("call_rome_2", {"tz": "Europe/Rome"}),
    ]
    assert results["role"] == "user" and results["content"] == [
        {"type": "tool_result", "tool_use_id": "call_rome1", "content": '{"temp_c": 21}'},
        {
            "type": "tool_result",
            "tool_use_id": "call_rome_2",
            "content": [{"type": "text", "text": "12:00"}, {"type": "text", "text": "CET"}],
        },
    ]


async def test_anthropic_ids_go_back_to_the_openai_upstream(
    to_anthropic: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The next turn carries the Anthropic-made ids to the OpenAI upstream, which
    (like the real API) rejects results that do not pair with their calls."""
    upstream.script_tools("claude-model", CALLS)
    first = await to_anthropic.chat.completions.create(
        model="auto", messages=OPENAI_CONVERSATION, tools=OPENAI_TOOLS
    )
    message = first.choices[0].message
    results = [
        {"role": "tool", "tool_call_id": call.id, "content": f"result {i}"}
        for i, call in enumerate(message.tool_calls or [])
    ]
    follow_up = [*OPENAI_CONVERSATION, message.model_dump(exclude_none=True), *results]
    raw = await to_anthropic.chat.completions.with_raw_response.create(
        model="auto", messages=follow_up, tools=OPENAI_TOOLS
    )
    assert raw.headers["x-tierwise-model"] == "big"
    assert (raw.parse().choices[0].message.content or "").startswith("Answer from strong-model")
    sent = _sent(upstream, "/v1/chat/completions")["messages"]
    ids = [c["id"] for c in sent[4]["tool_calls"]]
    assert ids == [c.id for c in message.tool_calls or []]
    assert [m["tool_call_id"] for m in sent[5:]] == ids


async def test_anthropic_conversation_falls_back_to_openai(
    to_openai: anthropic.AsyncAnthropic, upstream: FakeUpstream
) -> None:
    upstream.script_tools("strong-model", CALLS)
    raw = await to_openai.messages.with_raw_response.create(
        model="auto",
        max_tokens=100,
        messages=ANTHROPIC_CONVERSATION,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert raw.headers["x-tierwise-model"] == "big"
    message = await raw.parse()
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(b.name, b.input) for b in uses] == CALLS
    assert len({b.id for b in uses}) == 2 and all(b.id.startswith("call_") for b in uses)

    sent = _sent(upstream, "/v1/chat/completions")
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    user, assistant, first, second, text = sent["messages"]
    assert user == {"role": "user", "content": "Weather and time in Rome, then in Paris?"}
    assert assistant["content"] == "Checking Rome."
    calls = [
        (c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in assistant["tool_calls"]
    ]
    assert calls == [
        ("toolu_r1", "get_weather", '{"city":"Rome"}'),
        ("toolu_r2", "get_time", '{"tz":"Europe/Rome"}'),
    ]
    assert first == {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "toolu_r1"}
    assert second == {"role": "tool", "content": "Error: clockdown", "tool_call_id": "toolu_r2"}
    assert text == {"role": "user", "content": "Now Paris, please."}


OPENAI_CHOICES = [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"}),
]


@pytest.mark.parametrize(("choice", "expected"), OPENAI_CHOICES)
async def test_openai_tool_choice_as_anthropic(
    to_anthropic: openai.AsyncOpenAI, upstream: FakeUpstream, choice: Any, expected: Any
) -> None:
    await to_anthropic.chat.completions.create(
        model="auto", messages=OPENAI_CONVERSATION, tools=OPENAI_TOOLS, tool_choice=choice
    )
    assert _sent(upstream, "/v1/messages")["tool_choice"] == expected


ANTHROPIC_CHOICES = [
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "none"}, "none"),
    ({"type": "tool", "name": "get_time"}, {"type": "function", "function": {"name": "get_time"}}),
]


@pytest.mark.parametrize(("choice", "expected"), ANTHROPIC_CHOICES)
async def test_anthropic_tool_choice_as_openai(
    to_openai: anthropic.AsyncAnthropic, upstream: FakeUpstream, choice: Any, expected: Any
) -> None:
    await to_openai.messages.create(
        model="auto",
        max_tokens=100,
        messages=ANTHROPIC_CONVERSATION,
        tools=ANTHROPIC_TOOLS,
        tool_choice=choice,
    )
    sent = _sent(upstream, "/v1/chat/completions")
    assert sent["tool_choice"] == expected and "parallel_tool_calls" not in sent


async def test_openai_serial_tool_calls_as_anthropic(
    to_anthropic: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    await to_anthropic.chat.completions.create(
        model="auto",
        messages=OPENAI_CONVERSATION,
        tools=OPENAI_TOOLS,
        parallel_tool_calls=False,
    )
    choice = _sent(upstream, "/v1/messages")["tool_choice"]
    assert choice == {"type": "auto", "disable_parallel_tool_use": True}


async def test_anthropic_stream_reaches_an_openai_client_as_tool_call_deltas(
    to_anthropic: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    upstream.script_tools("claude-model", CALLS, text="Let me look.")
    indexes: list[int] = []
    async with to_anthropic.chat.completions.stream(
        model="auto", messages=OPENAI_CONVERSATION, tools=OPENAI_TOOLS
    ) as stream:
        async for event in stream:
            if event.type == "chunk" and event.chunk.choices:
                indexes += [t.index for t in event.chunk.choices[0].delta.tool_calls or []]
        final = await stream.get_final_completion()
    assert upstream.requests[-1].stream and upstream.requests[-1].path == "/v1/messages"
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look."
    calls = choice.message.tool_calls or []
    assert _named(calls) == CALLS
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("toolu_") for c in calls)
    assert sorted(set(indexes)) == [0, 1] and indexes == sorted(indexes)
    assert len(indexes) > 4, "arguments arrive in several deltas"


async def test_openai_stream_reaches_an_anthropic_client_as_tool_use_events(
    to_openai: anthropic.AsyncAnthropic, upstream: FakeUpstream
) -> None:
    upstream.script_tools("strong-model", CALLS, text="Let me look.")
    starts: list[tuple[int, str]] = []
    json_deltas = 0
    async with to_openai.messages.stream(
        model="auto", max_tokens=100, messages=ANTHROPIC_CONVERSATION, tools=ANTHROPIC_TOOLS
    ) as stream:
        async for event in stream:
            if event.type == "content_block_start":
                starts.append((event.index, event.content_block.type))
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                json_deltas += 1
        final = await stream.get_final_message()
    assert upstream.requests[-1].stream and upstream.requests[-1].path == "/v1/chat/completions"
    assert starts == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    assert final.content[0].type == "text" and final.content[0].text == "Let me look."
    assert json_deltas > 4, "arguments arrive in several input_json_delta events"
    assert final.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == CALLS
    ids = [b.id for b in final.content if b.type == "tool_use"]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)


async def test_anthropic_tool_results_reach_anthropic_whole(upstream: FakeUpstream) -> None:
    """Same format both ends: text blocks and `is_error` of a tool result survive."""
    async with (
        _server(upstream, "claude", "big") as live,
        anthropic.AsyncAnthropic(base_url=live.base_url, api_key="x", max_retries=0) as client,
    ):
        await client.messages.create(
            model="auto", max_tokens=50, messages=ANTHROPIC_CONVERSATION, tools=ANTHROPIC_TOOLS
        )
    results = _sent(upstream, "/v1/messages")["messages"][2]["content"]
    assert results[1] == {
        "type": "tool_result",
        "tool_use_id": "toolu_r2",
        "content": [{"type": "text", "text": "clock"}, {"type": "text", "text": "down"}],
        "is_error": True,
    }
    assert results[2] == {"type": "text", "text": "Now Paris, please."}


async def test_the_fake_rejects_results_that_do_not_pair(upstream: FakeUpstream) -> None:
    """Like the real APIs, so a translation that loses an id fails the tests above."""
    unpaired = [*OPENAI_CONVERSATION[:3], {**OPENAI_CONVERSATION[3], "tool_call_id": "other"}]
    async with openai.AsyncOpenAI(
        base_url=upstream.base_url + "/v1", api_key="x", max_retries=0
    ) as oai:
        with pytest.raises(openai.BadRequestError, match="other"):
            await oai.chat.completions.create(model="m", messages=unpaired)
    turns = [*ANTHROPIC_CONVERSATION[:2], {"role": "user", "content": "no results"}]
    async with anthropic.AsyncAnthropic(
        base_url=upstream.base_url, api_key="x", max_retries=0
    ) as claude:
        with pytest.raises(anthropic.BadRequestError, match="toolu_r1"):
            await claude.messages.create(model="m", max_tokens=5, messages=turns)
