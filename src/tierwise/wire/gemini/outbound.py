"""tierwise talking to Gemini: a `ChatRequest` to a `generateContent` body, and
answers, stream events and error bodies back."""

from __future__ import annotations

from typing import Any

import orjson

from tierwise.errors import BadRequestError, ContentPolicyError, InvalidResponseError
from tierwise.types import (
    JSON,
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    StreamDelta,
    ToolCall,
    ToolCallDelta,
)
from tierwise.wire.gemini.shapes import (
    call_to_part,
    classify_error,
    decode_logprobs,
    decode_usage,
    finish_reason,
    loads_object,
    part_from_url,
    part_to_call,
)

__all__ = ["StreamDecoder", "classify_error", "decode_response", "encode_request"]
_CALLING_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def encode_request(request: ChatRequest) -> JSON:
    system = [m.text() for m in request.messages if m.role in ("system", "developer")]
    body: JSON = {"contents": encode_contents(request.messages)}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
    choice = _calling_config(request.tool_choice)
    if choice is not None:
        body["toolConfig"] = {"functionCallingConfig": choice}
    generation = _generation_config(request)
    if generation:
        body["generationConfig"] = generation
    return body


def _generation_config(request: ChatRequest) -> JSON:
    config: dict[str, Any] = {
        "maxOutputTokens": request.max_tokens,
        "temperature": request.temperature,
        "topP": request.top_p,
        "stopSequences": request.stop,
        "candidateCount": request.n if request.n != 1 else None,
        "logprobs": request.top_logprobs if request.logprobs else None,
    }
    out: JSON = {k: v for k, v in config.items() if v is not None}
    if request.logprobs:
        out["responseLogprobs"] = True
    kind = (request.response_format or {}).get("type")
    if kind in ("json_object", "json_schema"):
        out["responseMimeType"] = "application/json"
        schema = ((request.response_format or {}).get("json_schema") or {}).get("schema")
        if kind == "json_schema" and schema is not None:
            out["responseJsonSchema"] = schema
    return out


def encode_contents(messages: list[Message]) -> list[JSON]:
    """OpenAI-shaped turns to Gemini contents: assistant turns are `model`, tool
    results are `functionResponse` parts of a user turn, and consecutive turns of
    one role merge."""
    names = {c.id: c.name for m in messages for c in m.tool_calls or ()}
    out: list[JSON] = []
    for message in messages:
        if message.role in ("system", "developer"):
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message, names)
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    return out


def _parts(message: Message, names: dict[str, str]) -> list[JSON]:
    if message.role == "tool":
        name = names.get(message.tool_call_id or "", message.name or "")
        response = {"name": name, "response": loads_object(message.text())}
        return [{"functionResponse": response}]
    parts: list[JSON] = []
    if isinstance(message.content, str):
        if message.content:
            parts.append({"text": message.content})
    elif message.content:
        parts.extend(_content_part(p) for p in message.content)
    parts.extend(call_to_part(c) for c in message.tool_calls or ())
    return parts or [{"text": ""}]


def _content_part(part: JSON) -> JSON:
    if part.get("type") != "image_url":
        return {"text": str(part.get("text", ""))}
    image = part.get("image_url")
    if not isinstance(image, dict):
        raise BadRequestError("image_url must be an object")
    return part_from_url(str(image.get("url", "")))


def _declaration(tool: JSON) -> JSON:
    function = tool.get("function", tool)
    out: JSON = {"name": function.get("name"), "description": function.get("description", "")}
    if function.get("parameters"):
        out["parametersJsonSchema"] = function["parameters"]
    return out


def _calling_config(choice: str | JSON | None) -> JSON | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"mode": _CALLING_MODES.get(choice, "AUTO")}
    name = (choice.get("function") or {}).get("name")
    return {"mode": "ANY", "allowedFunctionNames": [name]} if name else {"mode": "AUTO"}


def decode_response(body: Any, model: str) -> ChatResponse:
    """A `GenerateContentResponse`; a blocked prompt, or an answer the safety
    filter withheld whole, is a content-policy error."""
    if not isinstance(body, dict):
        raise InvalidResponseError("response is not an object")
    blocked = (body.get("promptFeedback") or {}).get("blockReason")
    candidates = body.get("candidates")
    if blocked:
        raise ContentPolicyError(f"the prompt was blocked: {blocked}")
    if not isinstance(candidates, list) or not candidates:
        raise InvalidResponseError("response has no candidates")
    ident = str(body.get("responseId", ""))
    choices = [_choice(c, i, ident) for i, c in enumerate(candidates)]
    if all(c.finish_reason == "content_filter" and _blank(c.message) for c in choices):
        reason = candidates[0].get("finishReason")
        raise ContentPolicyError(f"the answer was withheld by the safety filter: {reason}")
    return ChatResponse(
        id=ident,
        model=str(body.get("modelVersion") or model),
        choices=choices,
        usage=decode_usage(body.get("usageMetadata")),
    )


def _blank(message: Message) -> bool:
    return not (message.content or message.tool_calls)


def _choice(raw: Any, position: int, ident: str) -> Choice:
    if not isinstance(raw, dict):
        raise InvalidResponseError("candidate is not an object")
    text, calls = _read_parts(raw, f"call_{ident}_{position}")
    message = Message("assistant", text or None, tool_calls=calls or None)
    reason = finish_reason(raw.get("finishReason"), bool(calls))
    index = int(raw.get("index", position))
    return Choice(index, message, reason, decode_logprobs(raw.get("logprobsResult")))


def _read_parts(candidate: JSON, id_prefix: str) -> tuple[str, list[ToolCall]]:
    """The candidate's text (thoughts left out) and function calls."""
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(
        str(p.get("text", "")) for p in parts if isinstance(p, dict) and not p.get("thought")
    )
    calls = [
        part_to_call(p, f"{id_prefix}_{n}")
        for n, p in enumerate(q for q in parts if isinstance(q, dict) and "functionCall" in q)
    ]
    return text, calls


class StreamDecoder:
    """`streamGenerateContent?alt=sse` events to deltas. Each event is a whole
    `GenerateContentResponse` holding the next piece; usage is cumulative, so the
    last one seen is sent once the stream ends."""

    def __init__(self) -> None:
        self.finished = False
        self.produced = False
        self._usage: Any = None
        self._calls = 0

    def feed(self, data: str) -> list[StreamDelta]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise InvalidResponseError("stream event is not JSON") from None
        if not isinstance(chunk, dict):
            raise InvalidResponseError("stream event is not an object")
        if "error" in chunk:
            raise classify_error(500, chunk, None)
        blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise ContentPolicyError(f"the prompt was blocked: {blocked}")
        self._usage = chunk.get("usageMetadata") or self._usage
        deltas: list[StreamDelta] = []
        for position, candidate in enumerate(chunk.get("candidates") or ()):
            deltas += self._candidate(candidate, position, str(chunk.get("responseId", "")))
        return deltas

    def _candidate(self, raw: Any, position: int, ident: str) -> list[StreamDelta]:
        if not isinstance(raw, dict):
            raise InvalidResponseError("candidate is not an object")
        index = int(raw.get("index", position))
        text, calls = _read_parts(raw, f"call_{ident}_{self._calls}")
        out: list[StreamDelta] = []
        if text:
            out.append(StreamDelta(text=text, index=index))
        for call in calls:
            delta = ToolCallDelta(self._calls, call.id, call.name, call.arguments)
            out.append(StreamDelta(index=index, tool_calls=[delta]))
            self._calls += 1
        self.produced = self.produced or bool(out)
        reason = finish_reason(raw.get("finishReason"), self._calls > 0)
        if reason is not None:
            if reason == "content_filter" and not self.produced:
                raise ContentPolicyError("the answer was withheld by the safety filter")
            self.finished = True
            out.append(StreamDelta(index=index, finish_reason=reason))
        return out

    def close(self) -> list[StreamDelta]:
        """The deltas once the stream has ended: the usage, when any was reported."""
        usage = decode_usage(self._usage)
        return [] if usage is None else [StreamDelta(usage=usage)]
