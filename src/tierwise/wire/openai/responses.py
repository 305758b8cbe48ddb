"""`POST /v1/responses`, OpenAI's Responses API, mapped onto chat: the typed request,
its translation to a `ChatRequest` (instructions -> system, input items -> messages,
function tools -> tools, function_call_output -> tool messages), and the `response`
object built from a chat answer. Stream events are in `response_events.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, ValidationError, with_config
from typing_extensions import TypedDict

from tierwise.types import JSON, ChatRequest, ChatResponse, Message, ToolCall, Usage
from tierwise.wire.models import OPEN, STRICT, Positive, validator
from tierwise.wire.openai.inbound import request_error

Passed = Annotated[Any, Field(description="Passed to the upstream as given.")]


@with_config(OPEN)
class ResponsesContentPart(TypedDict):
    """`input_text`/`output_text` (`text`), `input_image` (`image_url`), ..."""

    type: str
    text: NotRequired[str]
    image_url: NotRequired[str | None]


@with_config(STRICT)
class ResponsesMessageItem(TypedDict):
    type: NotRequired[Literal["message"]]
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ResponsesContentPart]


@with_config(OPEN)
class ResponsesFunctionCallItem(TypedDict):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


@with_config(OPEN)
class ResponsesFunctionOutputItem(TypedDict):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ResponsesContentPart]


ResponsesInputItem = ResponsesMessageItem | ResponsesFunctionCallItem | ResponsesFunctionOutputItem


@with_config(OPEN)
class ResponsesFunctionTool(TypedDict):
    type: Literal["function"]
    name: Annotated[str, Field(min_length=1)]
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


@with_config(OPEN)
class ResponsesNamedTool(TypedDict):
    type: Literal["function"]
    name: str


@with_config(OPEN)
class ResponsesTextFormat(TypedDict):
    type: Literal["text", "json_object", "json_schema"]
    name: NotRequired[str]
    schema: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]


@with_config(OPEN)
class ResponsesText(TypedDict):
    format: NotRequired[ResponsesTextFormat]


@with_config(STRICT)
class OpenAIResponsesRequest(TypedDict):
    model: Annotated[str, Field(min_length=1, description="A route, tier or deployment.")]
    input: str | Annotated[list[ResponsesInputItem], Field(min_length=1)]
    instructions: NotRequired[str | None]
    previous_response_id: NotRequired[str | None]
    tools: NotRequired[list[ResponsesFunctionTool] | None]
    tool_choice: NotRequired[Literal["auto", "none", "required"] | ResponsesNamedTool | None]
    max_output_tokens: NotRequired[Positive | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    text: NotRequired[ResponsesText | None]
    stream: NotRequired[bool | None]
    store: NotRequired[bool | None]
    user: NotRequired[str | None]
    metadata: NotRequired[dict[str, str] | None]
    parallel_tool_calls: NotRequired[Passed]


_validate = validator(OpenAIResponsesRequest)


class ResponsesCall:
    """A validated `/v1/responses` request: the chat request it maps to (without the
    history of `previous_response_id`, which the server prepends) and its options."""

    def __init__(self, valid: JSON) -> None:
        self.valid = valid
        self.model: str = valid["model"]
        self.previous_id: str | None = valid.get("previous_response_id")
        self.stream = bool(valid.get("stream"))
        self.store = valid.get("store") is not False
        self.instructions: str | None = valid.get("instructions")
        self.input = decode_input(valid["input"])

    def chat(self, history: list[Message]) -> ChatRequest:
        get = self.valid.get
        system = [Message("system", self.instructions)] if self.instructions else []
        extra = {"parallel_tool_calls": get("parallel_tool_calls")}
        return ChatRequest(
            messages=[*system, *history, *self.input],
            model=self.valid["model"],
            max_tokens=get("max_output_tokens"),
            temperature=get("temperature"),
            top_p=get("top_p"),
            tools=[_tool(t) for t in get("tools") or []] or None,
            tool_choice=_tool_choice(get("tool_choice")),
            response_format=_response_format(get("text")),
            user=get("user"),
            metadata=get("metadata") or {},
            extra={k: v for k, v in extra.items() if v is not None},
        )


def decode_request(body: Any) -> ResponsesCall:
    try:
        valid = _validate(body)
    except ValidationError as exc:
        raise request_error(exc, body) from None
    return ResponsesCall(valid)


def decode_input(raw: str | list[JSON]) -> list[Message]:
    """Input items as chat messages; consecutive function calls make one assistant turn."""
    if isinstance(raw, str):
        return [Message("user", raw)]
    messages: list[Message] = []
    for item in raw:
        kind = item.get("type", "message")
        if kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item["arguments"])
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and last.tool_calls:
                last.tool_calls.append(call)
            else:
                messages.append(Message("assistant", None, tool_calls=[call]))
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else _text(output)
            messages.append(Message("tool", text, tool_call_id=item["call_id"]))
        else:
            messages.append(Message(item["role"], _content(item["content"])))
    return messages


def _content(content: str | list[JSON]) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if all(p.get("type") in ("input_text", "output_text") for p in content):
        return _text(content)
    return [_part(p) for p in content]


def _part(part: JSON) -> JSON:
    if part.get("type") == "input_image" and part.get("image_url"):
        return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    if "text" in part:
        return {"type": "text", "text": part["text"]}
    return dict(part)


def _text(parts: list[JSON]) -> str:
    return "".join(str(p.get("text", "")) for p in parts)


def _tool(tool: JSON) -> JSON:
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> str | JSON | None:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice if isinstance(choice, str) else None


def _response_format(text: JSON | None) -> JSON | None:
    form = (text or {}).get("format") or {}
    if form.get("type") == "json_object":
        return {"type": "json_object"}
    if form.get("type") == "json_schema":
        schema = {k: form[k] for k in ("name", "schema", "strict") if k in form}
        return {"type": "json_schema", "json_schema": schema}
    return None


# --- answers -------------------------------------------------------------------------


def message_item(item_id: str, text: str, status: str = "completed") -> JSON:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def function_item(item_id: str, call: ToolCall, status: str = "completed") -> JSON:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def output_items(response_id: str, answer: ChatResponse) -> list[JSON]:
    """A text answer as a message item, each tool call as a function_call item."""
    items: list[JSON] = []
    text, calls = answer.text(), answer.tool_calls()
    if text or not calls:
        items.append(message_item(f"msg_{response_id}", text))
    items += [function_item(f"fc_{response_id}_{i}", c) for i, c in enumerate(calls)]
    return items


def encode_usage(usage: Usage | None) -> JSON | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def encode_response(
    call: ResponsesCall,
    response_id: str,
    model: str,
    created: int,
    output: list[JSON],
    usage: Usage | None,
    status: str = "completed",
) -> JSON:
    """The `response` object, echoing the request's options as OpenAI does."""
    get = call.valid.get
    text = get("text") or {"format": {"type": "text"}}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": call.instructions,
        "max_output_tokens": get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": get("parallel_tool_calls") is not False,
        "previous_response_id": call.previous_id,
        "store": call.store,
        "temperature": get("temperature"),
        "text": text,
        "tool_choice": get("tool_choice") or "auto",
        "tools": get("tools") or [],
        "top_p": get("top_p"),
        "truncation": "disabled",
        "usage": encode_usage(usage),
        "user": get("user"),
        "metadata": get("metadata") or {},
    }


class OpenAIResponse(TypedDict):
    """The answer of `POST /v1/responses` without `stream`."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "in_progress", "failed", "incomplete"]
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None
    previous_response_id: str | None
