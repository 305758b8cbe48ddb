"""The typed request of `POST /v1/messages`: what the decoder accepts, no more and
no less. Fields the gateway converts with `str()` or passes on are left open."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Discriminator, Field, with_config
from typing_extensions import TypedDict

from tierwise.wire.models import STRICT, Positive

Text = Annotated[Any, Field(description="Converted to text.")]
StopReason = Literal["end_turn", "stop_sequence", "max_tokens", "tool_use", "refusal", "pause_turn"]
Passed = Annotated[Any, Field(description="Passed to the upstream.")]
CallId = Annotated[Any, Field(description="Tool call id.")]


@with_config(STRICT)
class AnthropicTextBlock(TypedDict):
    type: Literal["text"]
    text: NotRequired[Annotated[Any, Field(description="Text; other values become text.")]]


@with_config(STRICT)
class AnthropicImageSource(TypedDict):
    type: Literal["base64", "url"]
    media_type: NotRequired[Text]
    data: NotRequired[Text]
    url: NotRequired[Text]


@with_config(STRICT)
class AnthropicImageBlock(TypedDict):
    type: Literal["image"]
    source: AnthropicImageSource


@with_config(STRICT)
class AnthropicToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: NotRequired[CallId]
    name: NotRequired[Annotated[Any, Field(description="Tool name.")]]
    input: NotRequired[Annotated[Any, Field(description="Arguments.")]]


@with_config(STRICT)
class AnthropicToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: NotRequired[CallId]
    content: NotRequired[Annotated[Any, Field(description="Text or text blocks.")]]
    is_error: NotRequired[bool | None]


UserBlock = Annotated[
    AnthropicTextBlock | AnthropicImageBlock | AnthropicToolResultBlock, Discriminator("type")
]
AssistantBlock = Annotated[
    AnthropicTextBlock | AnthropicImageBlock | AnthropicToolUseBlock, Discriminator("type")
]


@with_config(STRICT)
class AnthropicUserMessage(TypedDict):
    role: Literal["user"]
    content: str | Annotated[list[UserBlock], Field(min_length=1)]


@with_config(STRICT)
class AnthropicAssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: str | Annotated[list[AssistantBlock], Field(min_length=1)]


@with_config(STRICT)
class AnthropicTool(TypedDict):
    name: str
    description: NotRequired[Passed]
    input_schema: NotRequired[Passed]


@with_config(STRICT)
class AnthropicToolChoice(TypedDict):
    type: Literal["auto", "any", "tool", "none"]
    name: NotRequired[Annotated[Any, Field(description="Tool name, for `tool`.")]]
    disable_parallel_tool_use: NotRequired[bool | None]


AnthropicTurn = Annotated[AnthropicUserMessage | AnthropicAssistantMessage, Discriminator("role")]


@with_config(STRICT)
class AnthropicMessagesRequest(TypedDict):
    model: Annotated[str, Field(min_length=1, description="A route, tier or deployment.")]
    messages: Annotated[list[AnthropicTurn], Field(min_length=1)]
    max_tokens: Positive
    system: NotRequired[str | list[AnthropicTextBlock] | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    stop_sequences: NotRequired[str | list[str] | None]
    tools: NotRequired[list[AnthropicTool] | None]
    tool_choice: NotRequired[AnthropicToolChoice | None]
    metadata: NotRequired[
        Annotated[Any, Field(description="`user_id`, when a string, is recorded as the user.")]
    ]
    stream: NotRequired[bool | None]


class AnthropicAnswerBlock(TypedDict):
    type: Literal["text", "tool_use"]
    text: NotRequired[str]
    id: NotRequired[str]
    name: NotRequired[str]
    input: NotRequired[dict[str, Any]]


class AnthropicUsage(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: NotRequired[int]
    cache_creation_input_tokens: NotRequired[int]


class AnthropicMessage(TypedDict):
    """The answer of `POST /v1/messages` without `stream`."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[AnthropicAnswerBlock]
    stop_reason: StopReason
    stop_sequence: str | None
    usage: AnthropicUsage
