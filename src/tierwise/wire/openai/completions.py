"""`POST /v1/completions`, OpenAI's legacy Completions API, mapped onto chat: the typed
request (one text prompt, one completion), its translation to a `ChatRequest` whose
prompt is one user message, and the `text_completion` answer and stream chunks built
from a chat answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, ValidationError, with_config
from typing_extensions import TypedDict

from tierwise.errors import RequestError
from tierwise.types import JSON, ChatRequest, ChatResponse, Message, StreamDelta, Usage
from tierwise.wire.models import STRICT, Integral, Positive, first_problem, validator
from tierwise.wire.openai.inbound import request_error
from tierwise.wire.openai.models import OpenAIUsage
from tierwise.wire.openai.shapes import encode_usage

PASSTHROUGH = ("seed", "presence_penalty", "frequency_penalty", "logit_bias")
Passed = Annotated[Any, Field(description="Passed to the upstream as given.")]
One = Annotated[int, Field(ge=1, le=1), Integral]
PROMPT = "only one text prompt per request is served: a string, or a list of one string"
UNSERVED = {
    "prompt": PROMPT,
    "n": "only n=1 is served (one completion per request)",
    "best_of": "only best_of=1 is served (one completion per request)",
    "echo": "echo is not supported: only echo=false is served",
    "logprobs": "logprobs are not supported: only logprobs=null is served",
    "suffix": "suffix (insertion) is not supported: only suffix=null is served",
}
FinishReason = Literal["stop", "length", "content_filter"]
KEPT_REASONS: dict[str, FinishReason] = {"length": "length", "content_filter": "content_filter"}


@with_config(STRICT)
class OpenAICompletionRequest(TypedDict):
    model: Annotated[str, Field(min_length=1, description="A route, tier or deployment.")]
    prompt: Annotated[
        str | Annotated[list[str], Field(min_length=1, max_length=1)],
        Field(description="One text prompt, sent as one user message."),
    ]
    max_tokens: NotRequired[Positive | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    stop: NotRequired[str | list[str] | None]
    n: NotRequired[One | None]
    best_of: NotRequired[One | None]
    echo: NotRequired[Literal[False] | None]
    logprobs: NotRequired[None]
    suffix: NotRequired[None]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[
        Annotated[Any, Field(description="`{include_usage: true}` adds a usage chunk.")]
    ]
    user: NotRequired[str | None]
    seed: NotRequired[Passed]
    presence_penalty: NotRequired[Passed]
    frequency_penalty: NotRequired[Passed]
    logit_bias: NotRequired[Passed]


_validate = validator(OpenAICompletionRequest)


class OpenAICompletionChoice(TypedDict):
    text: str
    index: int
    logprobs: None
    finish_reason: FinishReason


class OpenAICompletion(TypedDict):
    """The answer of `POST /v1/completions` without `stream`."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[OpenAICompletionChoice]
    usage: OpenAIUsage | None


@dataclass(frozen=True, slots=True)
class CompletionCall:
    """A validated `/v1/completions` request: the chat request it maps to, and
    whether it streams (with a usage chunk)."""

    chat: ChatRequest
    stream: bool
    include_usage: bool


def decode_request(body: Any) -> CompletionCall:
    """The chat request of a `/v1/completions` body; what it cannot serve (several
    prompts, token ids, more than one completion, echo, logprobs, suffix) is a 400
    naming the parameter."""
    try:
        valid = _validate(body)
    except ValidationError as exc:
        raise _refusal(exc, body) from None
    get, stop, prompt = valid.get, valid.get("stop"), valid["prompt"]
    chat = ChatRequest(
        messages=[Message("user", prompt if isinstance(prompt, str) else prompt[0])],
        model=valid["model"],
        max_tokens=get("max_tokens"),
        temperature=get("temperature"),
        top_p=get("top_p"),
        stop=[stop] if isinstance(stop, str) else stop,
        user=get("user"),
        extra={k: body[k] for k in PASSTHROUGH if k in body},
    )
    options = get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return CompletionCall(chat, bool(get("stream")), include_usage)


def _refusal(exc: ValidationError, body: Any) -> RequestError:
    path, _ = first_problem(exc, body)
    field = path[0] if path else None
    if isinstance(field, str) and field in UNSERVED:
        return RequestError(f"'{field}': {UNSERVED[field]}", param=field)
    return request_error(exc, body)


def finish_reason(reason: str | None) -> FinishReason:
    """Chat's reason in the Completions API's terms (a tool call's is `stop`)."""
    return KEPT_REASONS.get(reason or "", "stop")


def encode_response(
    response: ChatResponse, completion_id: str, model: str, created: int
) -> OpenAICompletion:
    first = response.choices[0] if response.choices else None
    reason = finish_reason(first.finish_reason if first else None)
    choice: OpenAICompletionChoice = {
        "text": response.text(),
        "index": 0,
        "logprobs": None,
        "finish_reason": reason,
    }
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": encode_usage(response.usage),
    }


def encode_chunk(delta: StreamDelta, completion_id: str, model: str, created: int) -> JSON:
    reason = finish_reason(delta.finish_reason) if delta.finish_reason else None
    choice = {"text": delta.text, "index": 0, "logprobs": None, "finish_reason": reason}
    return _chunk(completion_id, model, created, [choice])


def encode_usage_chunk(usage: Usage, completion_id: str, model: str, created: int) -> JSON:
    return {**_chunk(completion_id, model, created, []), "usage": encode_usage(usage)}


def _chunk(completion_id: str, model: str, created: int, choices: list[JSON]) -> JSON:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
