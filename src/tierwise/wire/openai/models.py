"""The typed request of `POST /v1/chat/completions`: what the decoder accepts, no
more and no less. Fields the gateway converts with `str()` or passes to the
upstream as given are left open (`Any`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, Field, WithJsonSchema, with_config
from typing_extensions import TypedDict

from tierwise.wire.models import OPEN, STRICT, Integral, Positive

Role = Literal["assistant", "developer", "function", "system", "tool", "user"]
PASSTHROUGH = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "parallel_tool_calls",
    "reasoning_effort",
    "service_tier",
)
Passed = Annotated[Any, Field(description="Passed to the upstream as given.")]
Text = Annotated[Any, Field(description="Converted to text.")]


def _not_an_image(kind: Any) -> Any:
    if kind == "image_url":
        raise ValueError("image_url parts need image_url.url")
    return kind


@with_config(OPEN)
class OpenAIImageURL(TypedDict):
    url: str


@with_config(OPEN)
class OpenAIImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: OpenAIImageURL


NotAnImage = Annotated[
    Any, AfterValidator(_not_an_image), WithJsonSchema({"not": {"const": "image_url"}})
]


@with_config(OPEN)
class OpenAIOtherPart(TypedDict):
    """A text, audio or file part: passed on as given."""

    type: NotRequired[NotAnImage]


@with_config(OPEN)
class OpenAIFunctionCall(TypedDict):
    name: str
    arguments: NotRequired[Annotated[Any, Field(description="JSON text of the arguments.")]]


@with_config(OPEN)
class OpenAIToolCall(TypedDict):
    id: NotRequired[Text]
    type: NotRequired[Annotated[Any, Field(description="`function`.")]]
    function: OpenAIFunctionCall


@with_config(STRICT)
class OpenAIMessage(TypedDict):
    role: Role
    content: NotRequired[str | list[OpenAIImagePart | OpenAIOtherPart] | None]
    name: NotRequired[str | None]
    tool_calls: NotRequired[list[OpenAIToolCall] | None]
    tool_call_id: NotRequired[str | None]


@with_config(OPEN)
class OpenAIFunctionName(TypedDict):
    name: str


@with_config(OPEN)
class OpenAITool(TypedDict):
    type: NotRequired[Annotated[Any, Field(description="`function`.")]]
    function: OpenAIFunctionName


@with_config(OPEN)
class OpenAIToolChoice(TypedDict):
    function: NotRequired[OpenAIFunctionName | None]


@with_config(OPEN)
class OpenAIResponseFormat(TypedDict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: NotRequired[dict[str, Any] | None]


@with_config(STRICT)
class OpenAIChatRequest(TypedDict):
    model: Annotated[str, Field(min_length=1, description="A route, tier or deployment.")]
    messages: Annotated[list[OpenAIMessage], Field(min_length=1)]
    max_tokens: NotRequired[Positive | None]
    max_completion_tokens: NotRequired[Positive | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    stop: NotRequired[str | list[str] | None]
    n: NotRequired[Annotated[int, Field(ge=1, le=16), Integral] | None]
    tools: NotRequired[list[OpenAITool] | None]
    tool_choice: NotRequired[str | OpenAIToolChoice | None]
    response_format: NotRequired[OpenAIResponseFormat | None]
    logprobs: NotRequired[bool | None]
    top_logprobs: NotRequired[Annotated[int, Field(ge=0, le=20), Integral] | None]
    user: NotRequired[str | None]
    metadata: NotRequired[dict[str, str] | None]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[
        Annotated[Any, Field(description="`{include_usage: true}` adds a usage chunk.")]
    ]
    seed: NotRequired[Passed]
    presence_penalty: NotRequired[Passed]
    frequency_penalty: NotRequired[Passed]
    logit_bias: NotRequired[Passed]
    parallel_tool_calls: NotRequired[Passed]
    reasoning_effort: NotRequired[Passed]
    service_tier: NotRequired[Passed]


class OpenAIFunctionOut(TypedDict):
    name: str
    arguments: str


class OpenAIToolCallOut(TypedDict):
    id: str
    type: Literal["function"]
    function: OpenAIFunctionOut


class OpenAIAnswerMessage(TypedDict):
    role: Literal["assistant"]
    content: str | list[Any] | None
    refusal: None
    tool_calls: NotRequired[list[OpenAIToolCallOut]]


class OpenAIChoice(TypedDict):
    index: int
    message: OpenAIAnswerMessage
    logprobs: dict[str, Any] | None
    finish_reason: str


Tokens = Annotated[int, Field(ge=0)]


class OpenAIPromptDetails(TypedDict):
    cached_tokens: Tokens
    cache_write_tokens: NotRequired[Tokens]


class OpenAIUsage(TypedDict):
    prompt_tokens: Tokens
    completion_tokens: Tokens
    total_tokens: Tokens
    prompt_tokens_details: NotRequired[OpenAIPromptDetails]


class OpenAIChatCompletion(TypedDict):
    """The answer of `POST /v1/chat/completions` without `stream`."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[OpenAIChoice]
    usage: OpenAIUsage | None
