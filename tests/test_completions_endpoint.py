"""`POST /v1/completions` through the official `openai` SDK: the legacy Completions API
mapped onto chat (the prompt as one user message), plain and streamed, with the chat
path's fallback and accounting, and a clear 400 for what it does not serve."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import openai
import pytest

from tests.helpers import CHEAP_PRICE, STRONG_PRICE, assert_billed_once, settle
from tierwise.server.openapi import OPENAPI
from tierwise.server.run import Running
from tierwise.store import from_pusd
from tierwise.testing import FakeUpstream


async def test_plain_completion_sends_the_prompt_as_one_user_message(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    raw = await oai.completions.with_raw_response.create(
        model="auto", prompt="hello there", max_tokens=50, stop=["\n\n"], seed=3, user="ann"
    )
    completion = raw.parse()
    assert completion.id.startswith("cmpl-") and completion.object == "text_completion"
    assert completion.model == "cheap-model" and len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.text == "Answer from cheap-model: hello there"
    assert (choice.index, choice.logprobs, choice.finish_reason) == (0, None, "stop")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sent = upstream.requests[-1].body
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]
    options = (sent["max_tokens"], sent["stop"], sent["seed"], sent["user"])
    assert options == (50, ["\n\n"], 3, "ann")
    assert raw.headers["x-tierwise-route"] == "auto" and raw.headers["x-tierwise-model"] == "mini"
    assert raw.headers["x-tierwise-attempts"] == "1" and raw.headers["x-tierwise-status"] == "ok"
    assert Decimal(raw.headers["x-tierwise-cost-usd"]) > 0


async def test_a_list_of_one_prompt_is_that_prompt(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    completion = await oai.completions.create(model="auto", prompt=["just this one"])
    assert completion.choices[0].text == "Answer from cheap-model: just this one"
    assert upstream.requests[-1].body["messages"] == [{"role": "user", "content": "just this one"}]


async def test_streamed_chunks_assemble_the_answer_then_usage(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.completions.create(
        model="auto",
        prompt="stream this one please",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"text_completion"}
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    *texts, last = chunks
    text = "".join(choice.text for chunk in texts for choice in chunk.choices)
    assert text == "Answer from cheap-model: stream this one please"
    assert [c.choices[0].finish_reason for c in texts][-1] == "stop"
    assert all(c.choices[0].logprobs is None and c.choices[0].index == 0 for c in texts)
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens > 0


async def test_a_stream_without_include_usage_ends_with_done(served: Running) -> None:
    body = {"model": "auto", "prompt": "no usage here", "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(served.base_url + "/v1/completions", json=body) as response,
    ):
        text = await response.text()
    assert response.status == 200 and response.headers["x-tierwise-model"] == "mini"
    assert "x-tierwise-cost-usd" not in response.headers
    assert '"usage"' not in text and text.endswith("data: [DONE]\n\n")


def priced(usage: Any, price: dict[str, str]) -> Decimal:
    """What `usage` costs at `price` (dollars per million tokens)."""
    tokens = usage.prompt_tokens * Decimal(price["input"])
    return (tokens + usage.completion_tokens * Decimal(price["output"])) / 10**6


async def complete(oai: openai.AsyncOpenAI, stream: bool, prompt: str) -> tuple[Any, str, Any]:
    """The response headers, the text and the usage, plain or assembled from chunks."""
    if not stream:
        raw = await oai.completions.with_raw_response.create(model="auto", prompt=prompt)
        completion = raw.parse()
        return raw.headers, completion.choices[0].text, completion.usage
    streamed = await oai.completions.with_raw_response.create(
        model="auto", prompt=prompt, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in streamed.parse()]
    text = "".join(choice.text for chunk in chunks for choice in chunk.choices)
    return streamed.headers, text, chunks[-1].usage


async def logged(served: Running, headers: Any) -> tuple[Any, list[Any]]:
    """The logged request and attempts of the answer with `headers`."""
    store = await settle(served, 1)
    assert await store.count_requests() == 1
    request_id = headers["x-tierwise-request-id"]
    detail = await store.request_detail(request_id)
    assert detail is not None
    return detail, list(await store.attempts_of([request_id]))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_completion_is_logged_with_its_cost_and_attempts(
    served: Running, oai: openai.AsyncOpenAI, stream: bool
) -> None:
    headers, text, usage = await complete(oai, stream, "log this answer")
    assert text == "Answer from cheap-model: log this answer"
    detail, attempts = await logged(served, headers)
    cost = priced(usage, CHEAP_PRICE)
    assert cost > 0 and from_pusd(detail["cost_pusd"]) == cost
    if not stream:
        assert Decimal(headers["x-tierwise-cost-usd"]) == cost
    assert detail["calls"] == len(attempts) == int(headers["x-tierwise-attempts"]) == 1
    assert detail["final_deployment"] == headers["x-tierwise-model"] == "mini"
    tokens = (detail["input_tokens"], detail["output_tokens"])
    assert tokens == (usage.prompt_tokens, usage.completion_tokens)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("fault", ["500", "empty"])
async def test_a_fallback_bills_each_attempt_once(
    served: Running, oai: openai.AsyncOpenAI, upstream: FakeUpstream, stream: bool, fault: str
) -> None:
    """The cheap deployment fails (a 500 costs nothing, a blank answer is billed) and
    the strong one answers: the request costs its attempts, each counted once."""
    upstream.set_failure_rate("cheap-model", 1.0, fault)
    headers, text, usage = await complete(oai, stream, "fall back and bill")
    assert text == "Answer from strong-model: fall back and bill"
    assert headers["x-tierwise-model"] == "big" and int(headers["x-tierwise-attempts"]) >= 2
    detail, attempts = await logged(served, headers)
    blank = fault == "empty"
    answered = assert_billed_once(
        detail, attempts, headers, upstream, blank_billed=blank, plain=not stream
    )
    assert from_pusd(answered["cost_pusd"]) == priced(usage, STRONG_PRICE)


@pytest.mark.parametrize(
    ("options", "param", "says"),
    [
        ({"prompt": ["one", "two"]}, "prompt", "only one text prompt"),
        ({"prompt": [1, 2, 3]}, "prompt", "only one text prompt"),
        ({"prompt": [[1, 2], [3]]}, "prompt", "only one text prompt"),
        ({"prompt": "x", "n": 2}, "n", "only n=1"),
        ({"prompt": "x", "echo": True}, "echo", "only echo=false"),
        ({"prompt": "x", "logprobs": 2}, "logprobs", "only logprobs=null"),
        ({"prompt": "x", "suffix": "end"}, "suffix", "only suffix=null"),
        ({"prompt": "x", "best_of": 3}, "best_of", "only best_of=1"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ],
    ids=["prompts", "ids", "id-arrays", "n", "echo", "logprobs", "suffix", "best-of", "max"],
)
async def test_what_is_not_served_is_a_400_naming_the_parameter(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream, options: dict[str, Any], param: str, says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.completions.create(model="auto", **options)
    error = refused.value
    assert error.status_code == 400 and error.param == param and says in error.message
    assert isinstance(error.body, dict) and error.body["type"] == "invalid_request_error"
    assert upstream.count() == 0


async def test_defaults_spelled_out_are_served(oai: openai.AsyncOpenAI) -> None:
    completion = await oai.completions.create(
        model="auto", prompt="x", n=1, best_of=1, echo=False, logprobs=None, suffix=None
    )
    assert completion.choices[0].text == "Answer from cheap-model: x"


async def test_an_unknown_model_is_a_404(oai: openai.AsyncOpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await oai.completions.create(model="no-such-model", prompt="x")
    assert missing.value.param == "model" and missing.value.code == "model_not_found"
    assert upstream.count() == 0


async def test_the_openapi_document_lists_completions(served: Running) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(served.base_url + "/openapi.json") as response,
    ):
        document = await response.json()
    operation = document["paths"]["/v1/completions"]["post"]
    assert operation["operationId"] == "createCompletion" and document == OPENAPI
    request = document["components"]["schemas"]["OpenAICompletionRequest"]
    assert {"model", "prompt", "n", "echo", "logprobs", "suffix", "best_of"} <= set(
        request["properties"]
    )
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
