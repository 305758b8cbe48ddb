"""tierwise talking to an Anthropic Messages upstream: a `ChatRequest` to a
request body, answers, stream events and error bodies back."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from tierwise.errors import (
    BadRequestError,
    ContentPolicyError,
    ContextWindowError,
    InvalidResponseError,
    ProviderError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamServerError,
)
from tierwise.types import (
    JSON,
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    ToolCallDelta,
    Usage,
)
from tierwise.wire.anthropic.shapes import (
    call_to_tool_use,
    decode_usage,
    finish_reason,
    part_to_image,
    tool_result,
    tool_use_to_call,
)
from tierwise.wire.status import CONTEXT_MARKERS, POLICY_MARKERS, error_for_status
from tierwise.wire.turns import merge_turns

DEFAULT_MAX_TOKENS = 4096
STATUS_KINDS: dict[int, type[ProviderError]] = {
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamServerError,
    413: ContextWindowError,
    429: RateLimitedError,
    529: UpstreamServerError,
}
JSON_INSTRUCTION = "Respond only with a valid JSON object, with no text around it."


def decode_event(event: str, data: str, decoder: StreamDecoder) -> list[StreamDelta]:
    """One stream event to deltas, through the stream's `decoder`."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidResponseError("stream event is not JSON") from None
    return decoder.feed(event, value)


def encode_request(request: ChatRequest, model: str, default_max_tokens: int) -> JSON:
    system = [m.text() for m in request.messages if m.role in ("system", "developer")]
    if request.response_format and request.response_format.get("type") != "text":
        system.append(_json_instruction(request.response_format))
    body: JSON = {
        "model": model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": encode_messages(request.messages),
    }
    if system:
        body["system"] = "\n\n".join(system)
    optional: dict[str, Any] = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop_sequences": request.stop,
        "tools": [_encode_tool(t) for t in request.tools] if request.tools else None,
        "tool_choice": _encode_tool_choice(request.tool_choice, request.extra),
        "metadata": {"user_id": request.user} if request.user else None,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    return body


def _json_instruction(response_format: JSON) -> str:
    schema = _object(response_format.get("json_schema"), "response_format.json_schema").get(
        "schema"
    )
    if schema is None:
        return JSON_INSTRUCTION
    return f"{JSON_INSTRUCTION} It must match this JSON schema: {orjson.dumps(schema).decode()}"


def encode_messages(messages: list[Message]) -> list[JSON]:
    """OpenAI-shaped turns to Anthropic turns: tool results become user blocks,
    and consecutive turns of one role merge."""
    return merge_turns(messages, _encode_blocks)


def _encode_blocks(message: Message) -> list[JSON]:
    if message.role == "tool":
        return [tool_result(message)]
    blocks: list[JSON] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"type": "text", "text": message.content})
    elif message.content:
        blocks.extend(_encode_part(part) for part in message.content)
    blocks.extend({**call_to_tool_use(call)} for call in message.tool_calls or ())
    return blocks


def _encode_part(part: JSON) -> JSON:
    if part.get("type") != "image_url":
        return {"type": "text", "text": str(part.get("text", ""))}
    return part_to_image(str(_object(part.get("image_url"), "image_url").get("url", "")))


def _encode_tool(tool: JSON) -> JSON:
    function = tool.get("function", tool)
    return {
        "name": function.get("name"),
        "description": function.get("description", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }


def _encode_tool_choice(choice: str | JSON | None, extra: JSON) -> JSON | None:
    """OpenAI's `tool_choice` (`required` is `any`, a named function is `tool`), and
    `parallel_tool_calls: false` as `disable_parallel_tool_use`."""
    serial = extra.get("parallel_tool_calls") is False
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if serial else None
    if isinstance(choice, str):
        out = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
        encoded: JSON = out.get(choice, {"type": "auto"})
    else:
        name = _object(choice.get("function"), "tool_choice.function").get("name")
        encoded = {"type": "tool", "name": str(name)} if name else {"type": "auto"}
    if serial and encoded["type"] != "none":
        encoded = {**encoded, "disable_parallel_tool_use": True}
    return encoded


def _object(value: Any, where: str) -> JSON:
    """`value` as an object (absent is empty); anything else is a bad request."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f"{where} must be an object")
    return value


def decode_response(body: Any, model: str) -> ChatResponse:
    try:
        blocks = list(body["content"])
    except (KeyError, TypeError):
        raise InvalidResponseError("malformed message: no content") from None
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    calls = [tool_use_to_call(b) for b in blocks if b.get("type") == "tool_use"]
    message = Message("assistant", text or None, tool_calls=calls or None)
    reason = finish_reason(body.get("stop_reason"))
    return ChatResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model") or model),
        choices=[Choice(0, message, reason)],
        usage=decode_usage(body.get("usage")),
    )


class StreamDecoder:
    """Anthropic stream events to deltas; keeps usage and tool-block indexes."""

    def __init__(self) -> None:
        self.done = False
        self._usage = Usage()
        self._tools: dict[int, int] = {}

    def feed(self, event: str, data: Any) -> list[StreamDelta]:
        kind = event or (data.get("type") if isinstance(data, dict) else "")
        if not isinstance(data, dict):
            raise InvalidResponseError(f"stream event {kind!r} is not an object")
        handler = getattr(self, f"_on_{kind}", None)
        return handler(data) if handler else []

    def _on_message_start(self, data: JSON) -> list[StreamDelta]:
        self._usage = decode_usage((data.get("message") or {}).get("usage")) or Usage()
        return [StreamDelta(role="assistant")]

    def _on_content_block_start(self, data: JSON) -> list[StreamDelta]:
        block = data.get("content_block") or {}
        if block.get("type") != "tool_use":
            return []
        slot = self._tools.setdefault(int(data.get("index", 0)), len(self._tools))
        return [StreamDelta(tool_calls=[ToolCallDelta(slot, block.get("id"), block.get("name"))])]

    def _on_content_block_delta(self, data: JSON) -> list[StreamDelta]:
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [StreamDelta(text=str(delta.get("text", "")))]
        if delta.get("type") == "input_json_delta":
            slot = self._tools.get(int(data.get("index", 0)), 0)
            partial = str(delta.get("partial_json", ""))
            return [StreamDelta(tool_calls=[ToolCallDelta(slot, arguments=partial)])]
        return []

    def _on_message_delta(self, data: JSON) -> list[StreamDelta]:
        """Its usage is cumulative: output tokens always, input tokens when sent."""
        usage = data.get("usage") or {}
        if "input_tokens" in usage:
            self._usage = decode_usage(usage) or self._usage
        else:
            output = int(usage.get("output_tokens") or 0)
            self._usage = dataclasses.replace(self._usage, output_tokens=output)
        reason = (data.get("delta") or {}).get("stop_reason")
        return [StreamDelta(finish_reason=finish_reason(reason))]

    def _on_message_stop(self, data: JSON) -> list[StreamDelta]:
        self.done = True
        return [StreamDelta(usage=self._usage)]

    def _on_error(self, data: JSON) -> list[StreamDelta]:
        raise classify_error(500, data, None)


def classify_error(status: int, body: Any, retry_after: float | None) -> ProviderError:
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {"message": str(body)[:300]}
    message = str(error.get("message") or "")[:500]
    kind = str(error.get("type") or "")
    text = f"{kind} {message.lower()}"
    if kind == "overloaded_error":
        return UpstreamServerError(message, status=status)
    if kind == "rate_limit_error":
        return RateLimitedError(message, status=status, retry_after_s=retry_after)
    if status in (400, 413) and any(m in text for m in CONTEXT_MARKERS):
        return ContextWindowError(message, status=status)
    if status in (400, 403) and any(m in text for m in POLICY_MARKERS):
        return ContentPolicyError(message, status=status)
    return error_for_status(status, message, STATUS_KINDS, retry_after)
