"""Anthropic Messages wire format: requests, answers, stream events, usage, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
    UpstreamConnectionError,
    UpstreamServerError,
)
from tierwise.providers.base import (
    HttpClient,
    Timeouts,
    error_for_status,
    iter_sse,
    loads_event,
    parse_retry_after,
    read_json,
)
from tierwise.providers.openai_compat import CONTEXT_MARKERS, POLICY_MARKERS
from tierwise.types import (
    JSON,
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
STATUS_KINDS: dict[int, type[ProviderError]] = {
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamServerError,
    413: ContextWindowError,
    429: RateLimitedError,
    529: UpstreamServerError,
}
JSON_INSTRUCTION = "Respond only with a valid JSON object, with no text around it."


class AnthropicProvider:
    """Speaks `/v1/messages`."""

    def __init__(
        self,
        http: HttpClient,
        *,
        model: str,
        api_key: str | None = None,
        api_base: str = "https://api.anthropic.com",
        max_output_tokens: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._http, self._model = http, model
        self._url = api_base.rstrip("/").removesuffix("/v1") + "/v1/messages"
        self._max_tokens = max_output_tokens or DEFAULT_MAX_TOKENS
        self._headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            **(headers or {}),
        }
        if api_key:
            self._headers["x-api-key"] = api_key

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        response = await self._http.post(self._url, self.encode(request), self._headers, timeouts)
        body = await read_json(response)
        if response.status >= 400:
            raise classify_error(response.status, body, parse_retry_after(response.headers))
        return decode_response(body, self._model)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        body = self.encode(request)
        body["stream"] = True
        response = await self._http.post(self._url, body, self._headers, timeouts)
        try:
            if response.status >= 400:
                error = await read_json(response)
                raise classify_error(response.status, error, parse_retry_after(response.headers))
            decoder = StreamDecoder()
            async for event, data in iter_sse(response):
                for delta in decoder.feed(event, loads_event(data)):
                    yield delta
                if decoder.done:
                    return
            raise UpstreamConnectionError("stream ended without message_stop")
        finally:
            response.release()

    async def aclose(self) -> None:
        return None

    def encode(self, request: ChatRequest) -> JSON:
        return encode_request(request, self._model, self._max_tokens)


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
        "tool_choice": _encode_tool_choice(request.tool_choice),
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
    out: list[JSON] = []
    for message in messages:
        if message.role in ("system", "developer"):
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _encode_blocks(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _encode_blocks(message: Message) -> list[JSON]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.text(),
            }
        ]
    blocks: list[JSON] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"type": "text", "text": message.content})
    elif message.content:
        blocks.extend(_encode_part(part) for part in message.content)
    for call in message.tool_calls or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _loads_object(call.arguments),
            }
        )
    return blocks


def _encode_part(part: JSON) -> JSON:
    if part.get("type") != "image_url":
        return {"type": "text", "text": str(part.get("text", ""))}
    url = str(_object(part.get("image_url"), "image_url").get("url", ""))
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _loads_object(text: str) -> JSON:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _encode_tool(tool: JSON) -> JSON:
    function = tool.get("function", tool)
    return {
        "name": function.get("name"),
        "description": function.get("description", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }


def _encode_tool_choice(choice: str | JSON | None) -> JSON | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {
            "auto": {"type": "auto"},
            "required": {"type": "any"},
            "none": {"type": "none"},
        }.get(choice, {"type": "auto"})
    name = _object(choice.get("function"), "tool_choice.function").get("name")
    return {"type": "tool", "name": str(name)} if name else {"type": "auto"}


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
    calls = [
        ToolCall(
            str(b.get("id", "")),
            str(b.get("name", "")),
            orjson.dumps(b.get("input") or {}).decode(),
        )
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message = Message("assistant", text or None, tool_calls=calls or None)
    reason = STOP_REASONS.get(str(body.get("stop_reason")), body.get("stop_reason"))
    return ChatResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model") or model),
        choices=[Choice(0, message, reason)],
        usage=decode_usage(body.get("usage")),
    )


def decode_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    created = int(raw.get("cache_creation_input_tokens") or 0)
    total_in = int(raw.get("input_tokens") or 0) + cached + created
    return Usage(total_in, int(raw.get("output_tokens") or 0), cached)


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
        output = int((data.get("usage") or {}).get("output_tokens") or 0)
        self._usage = Usage(self._usage.input_tokens, output, self._usage.cached_input_tokens)
        reason = (data.get("delta") or {}).get("stop_reason")
        return [StreamDelta(finish_reason=STOP_REASONS.get(str(reason), reason))]

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
