"""Tool calls from the embedded default's local models: a tools request answers
with `tool_calls`, and the text a small model writes a call as is read as one."""

from __future__ import annotations

import asyncio
import functools
import json
import operator
from typing import Any

import openai
import pytest

from tierwise.defaults import embedded_config
from tierwise.providers.tool_text import calls_in_text, could_be_call, offered_names
from tierwise.server.run import running

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
NAMES = offered_names([WEATHER])
CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'


def _ids() -> Any:
    count = iter(range(100))
    return lambda: f"call_{next(count)}"


@pytest.mark.parametrize(
    "text",
    [
        CALL,
        f"```json\n{CALL}\n```",
        f"<tool_call>\n{CALL}\n</tool_call>",
        f"<response>\n{CALL}\n</response>",
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    ],
)
def test_a_call_written_as_text_is_read_as_a_call(text: str) -> None:
    calls = calls_in_text(text, NAMES, _ids())
    assert calls is not None and len(calls) == 1
    assert (calls[0].id, calls[0].name) == ("call_0", "get_weather")
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert could_be_call(text[:3])


def test_parallel_calls_written_as_a_list() -> None:
    text = f'[{CALL}, {{"name": "get_weather", "arguments": {{"city": "Rome"}}}}]'
    calls = calls_in_text(text, NAMES, _ids()) or []
    assert [(c.id, json.loads(c.arguments)["city"]) for c in calls] == [
        ("call_0", "Paris"),
        ("call_1", "Rome"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "It is sunny in Paris.",
        '{"name": "get_time", "arguments": {}}',
        '{"answer": "Paris"}',
        f"Sure: {CALL}",
        '{"name": "get_weather", "arguments": [1]}',
        "```json\n{not json\n```",
        f"[{CALL}, 3]",
    ],
)
def test_other_answers_stay_text(text: str) -> None:
    assert calls_in_text(text, NAMES, _ids()) is None


def test_only_answers_starting_like_a_call_are_held() -> None:
    assert could_be_call("") and could_be_call("  {") and could_be_call("```")
    assert not could_be_call("Sure") and not could_be_call(" It")


@pytest.mark.slow
async def test_local_qwen_answers_a_tools_request_with_tool_calls() -> None:
    """SmolLM2-135M (the default's first tier) answers tools requests with prose, so
    the request names the Qwen deployment."""
    pytest.importorskip("xllamacpp", reason="local models need the xllamacpp wheel")
    async with running(embedded_config()) as live:
        url = live.base_url + "/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
            completion = await client.chat.completions.create(
                model="qwen2.5-0.5b",
                messages=[{"role": "user", "content": "What's the weather in Paris?"}],
                tools=[WEATHER],
                max_tokens=64,
                temperature=0,
            )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    function = (choice.message.tool_calls or [])[0].model_dump()["function"]
    assert function["name"] == "get_weather"
    assert "paris" in json.loads(function["arguments"])["city"].lower()


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


def langchain_qwen(base_url: str) -> Any:
    """LangChain's OpenAI chat model on the gateway's Qwen deployment, with the weather
    tool bound."""
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(
        base_url=base_url + "/v1",
        api_key="x",
        model="qwen2.5-0.5b",
        temperature=0,
        max_tokens=64,
        max_retries=0,
    )
    return chat.bind_tools([get_weather])


def assert_called_for_paris(name: Any, args: Any, content: Any) -> None:
    assert name == "get_weather"
    assert "paris" in str(args["city"]).lower()
    assert content == "", f"the call is left as text: {content!r}"


@pytest.mark.slow
async def test_langchain_bind_tools_gets_tool_calls_from_local_qwen() -> None:
    """`bind_tools` and a synchronous `invoke` (off the gateway's event loop): the
    AIMessage holds the call in `tool_calls`, none of it as JSON text in `content`."""
    pytest.importorskip("xllamacpp", reason="local models need the xllamacpp wheel")
    async with running(embedded_config()) as live:
        model = langchain_qwen(live.base_url)
        message = await asyncio.to_thread(model.invoke, "What's the weather in Paris?")
    assert len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert_called_for_paris(call["name"], call["args"], message.content)


@pytest.mark.slow
async def test_langchain_bind_tools_streams_tool_call_chunks_from_local_qwen() -> None:
    """The same request streamed: the chunks' `tool_call_chunks` add up to the call."""
    pytest.importorskip("xllamacpp", reason="local models need the xllamacpp wheel")
    async with running(embedded_config()) as live:
        model = langchain_qwen(live.base_url)
        chunks = await asyncio.to_thread(lambda: list(model.stream("What's the weather in Paris?")))
    assert chunks and any(chunk.tool_call_chunks for chunk in chunks)
    message = functools.reduce(operator.add, chunks)
    assert len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert_called_for_paris(call["name"], call["args"], message.content)
