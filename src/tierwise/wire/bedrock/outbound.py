"""tierwise talking to Bedrock's Converse API: a `ChatRequest` to a `converse`
body, and answers and error bodies back."""

from __future__ import annotations

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
    UpstreamTimeoutError,
)
from tierwise.types import JSON, ChatRequest, ChatResponse, Choice, Message, ToolCall, Usage
from tierwise.wire.status import CONTEXT_MARKERS, error_for_status
from tierwise.wire.turns import merge_turns

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Converse `stopReason`s to the neutral (OpenAI) finish reasons."""
ERROR_KINDS: dict[str, type[ProviderError]] = {
    "ThrottlingException": RateLimitedError,
    "ServiceQuotaExceededException": RateLimitedError,
    "ModelNotReadyException": RateLimitedError,
    "ModelTimeoutException": UpstreamTimeoutError,
    "InternalServerException": UpstreamServerError,
    "ServiceUnavailableException": UpstreamServerError,
    "ModelErrorException": UpstreamServerError,
    "ModelStreamErrorException": UpstreamServerError,
    "ResourceNotFoundException": UpstreamServerError,
    "AccessDeniedException": UpstreamAuthError,
    "UnrecognizedClientException": UpstreamAuthError,
    "ExpiredTokenException": UpstreamAuthError,
    "InvalidSignatureException": UpstreamAuthError,
    "MissingAuthenticationTokenException": UpstreamAuthError,
}
"""Error types (the `x-amzn-ErrorType` header, or a stream's `:exception-type`)."""
STATUS_KINDS: dict[int, type[ProviderError]] = {
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamServerError,
    408: UpstreamTimeoutError,
    429: RateLimitedError,
}
TOKEN_LIMIT_MARKERS = (*CONTEXT_MARKERS, "input is too long", "too many input tokens")
JSON_INSTRUCTION = "Respond only with a valid JSON object, with no text around it."
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
FILTERED = "content_filtered"
"""The stop reason of an answer the model's content filter withheld: with nothing
said, a content-policy error. A guardrail's intervention (`guardrail_intervened`)
is an answer: the deployment's own guardrail replaced it with its blocked message,
which falling back to another deployment would get around."""


def encode_request(request: ChatRequest) -> JSON:
    system = [{"text": m.text()} for m in request.messages if m.role in ("system", "developer")]
    if request.response_format and request.response_format.get("type") != "text":
        system.append({"text": JSON_INSTRUCTION})
    body: JSON = {"messages": encode_messages(request.messages)}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {
        "maxTokens": request.max_tokens,
        "temperature": request.temperature,
        "topP": request.top_p,
        "stopSequences": request.stop,
    }
    inference = {k: v for k, v in inference.items() if v is not None}
    if inference:
        body["inferenceConfig"] = inference
    if request.tools:
        body["toolConfig"] = _tool_config(request.tools, request.tool_choice)
    return body


def encode_messages(messages: list[Message]) -> list[JSON]:
    """OpenAI-shaped turns to Converse turns: tool results are `toolResult` blocks
    of a user turn, and consecutive turns of one role merge."""
    return merge_turns(messages, _blocks)


def _blocks(message: Message) -> list[JSON]:
    if message.role == "tool":
        content = _loads(message.text())
        result = [{"json": content}] if isinstance(content, dict) else [{"text": message.text()}]
        use_id = message.tool_call_id or ""
        return [{"toolResult": {"toolUseId": use_id, "content": result, "status": "success"}}]
    blocks: list[JSON] = []
    if isinstance(message.content, str):
        if message.content:
            blocks.append({"text": message.content})
    elif message.content:
        blocks.extend(_content_block(part) for part in message.content)
    for call in message.tool_calls or ():
        arguments = _loads(call.arguments)
        use = {"toolUseId": call.id, "name": call.name}
        blocks.append(
            {"toolUse": {**use, "input": arguments if isinstance(arguments, dict) else {}}}
        )
    return blocks


def _content_block(part: JSON) -> JSON:
    if part.get("type") != "image_url":
        return {"text": str(part.get("text", ""))}
    image = part.get("image_url")
    url = str(image.get("url", "")) if isinstance(image, dict) else ""
    if not (url.startswith("data:image/") and ";base64," in url):
        raise BadRequestError("Bedrock takes images as base64 data URLs only")
    media, data = url[len("data:image/") :].split(";base64,", 1)
    kind = "jpeg" if media == "jpg" else media
    if kind not in IMAGE_FORMATS:
        raise BadRequestError(f"Bedrock takes {', '.join(IMAGE_FORMATS)} images, not {media}")
    return {"image": {"format": kind, "source": {"bytes": data}}}


def _tool_config(tools: list[JSON], choice: str | JSON | None) -> JSON:
    specs = []
    for tool in tools:
        function = tool.get("function", tool)
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        spec = {"name": function.get("name"), "inputSchema": {"json": schema}}
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: JSON = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return config


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return None


def decode_response(body: Any, model: str) -> ChatResponse:
    """A Converse answer; one the content filter withheld whole is a
    content-policy error."""
    try:
        blocks = list(body["output"]["message"]["content"])
    except (KeyError, TypeError):
        raise InvalidResponseError("malformed answer: no output.message.content") from None
    text = "".join(str(b["text"]) for b in blocks if isinstance(b, dict) and "text" in b)
    calls = [use_to_call(b["toolUse"]) for b in blocks if isinstance(b, dict) and "toolUse" in b]
    stop = body.get("stopReason")
    if stop == FILTERED and not (text or calls):
        raise ContentPolicyError(f"the answer was stopped: {stop}", status=200)
    message = Message("assistant", text or None, tool_calls=calls or None)
    reason = STOP_REASONS.get(str(stop), "stop")
    return ChatResponse("", model, [Choice(0, message, reason)], decode_usage(body.get("usage")))


def use_to_call(use: JSON) -> ToolCall:
    arguments = orjson.dumps(use.get("input") or {}).decode()
    return ToolCall(str(use.get("toolUseId", "")), str(use.get("name", "")), arguments)


def decode_usage(raw: Any) -> Usage | None:
    """Converse usage: `inputTokens` leaves out cache reads and writes."""
    if not isinstance(raw, dict) or "inputTokens" not in raw:
        return None
    cached = int(raw.get("cacheReadInputTokens") or 0)
    written = int(raw.get("cacheWriteInputTokens") or 0)
    total_in = int(raw.get("inputTokens") or 0) + cached + written
    return Usage(total_in, int(raw.get("outputTokens") or 0), cached)


def classify_error(
    status: int, error_type: str | None, body: Any, retry_after: float | None
) -> ProviderError:
    """An AWS error (its type from `x-amzn-ErrorType` or the body's `__type`) in
    the taxonomy."""
    body = body if isinstance(body, dict) else {}
    message = str(body.get("message") or body.get("Message") or "")[:500]
    kind = (error_type or str(body.get("__type") or "")).split(":")[0].rsplit("#", 1)[-1]
    kind = kind[:1].upper() + kind[1:]
    if kind == "ValidationException":
        if any(m in message.lower() for m in TOKEN_LIMIT_MARKERS):
            return ContextWindowError(message, status=status)
        return BadRequestError(message, status=status)
    cls = ERROR_KINDS.get(kind)
    if cls is not None:
        return cls(f"{kind}: {message}", status=status, retry_after_s=retry_after)
    return error_for_status(status, f"{kind}: {message}", STATUS_KINDS, retry_after)
