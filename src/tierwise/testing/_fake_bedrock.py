"""Bedrock Converse and ConverseStream for the fake upstream: content blocks in,
`output.message` out, streams in AWS's binary event-stream framing (written
here from the format's description: prelude, CRC32s, string headers), errors
named in `x-amzn-ErrorType`. Requests must carry a SigV4 `Authorization` header;
whether it verifies is for the test to check, with the credentials it chose."""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any, ClassVar

from aiohttp import web

from tierwise.testing import _fake_wire as wire
from tierwise.testing._fake_dialects import chat_call, json_response

_PATH = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
_CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_ERRORS = {
    "429": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "500": (500, "InternalServerException", "The server encountered an internal error."),
    "503": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
    "auth": (403, "UnrecognizedClientException",
             "The security token included in the request is invalid."),
    "bad_request": (400, "ValidationException", "1 validation error detected: Value '3.5' at "
                    "'inferenceConfig.temperature' failed to satisfy constraint: Member must "
                    "have value less than or equal to 1"),
}  # fmt: skip
_IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}
EVENT_STREAM = "application/vnd.amazon.eventstream"
GUARDRAIL_TEXT = "Sorry, the model cannot answer this question."


def event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: total and header lengths, the prelude's CRC32,
    string-typed headers, the payload, and the message's CRC32."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_frame(headers, wire.dumps({**payload, "p": "abcdefgh"}))


def _block_text(block: Any) -> str:
    if not isinstance(block, dict):
        raise ValueError("each content block must be an object")
    image = block.get("image")
    if image is not None:
        source = image.get("source") or {}
        if image.get("format") not in _IMAGE_FORMATS or not source.get("bytes"):
            raise ValueError("image blocks need a format and source.bytes")
    return str(block.get("text", ""))


def _message(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("role") not in ("user", "assistant"):
        raise ValueError("each message needs role user or assistant")
    blocks = raw.get("content")
    if not isinstance(blocks, list) or not blocks:
        raise ValueError("each message needs content blocks")
    if any(isinstance(b, dict) and "toolResult" in b for b in blocks):
        return {"role": "tool", "content": "tool result"}
    return {"role": raw["role"], "content": "\n".join(_block_text(b) for b in blocks)}


def _tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return None
    if "any" in choice:
        return "required"
    name = (choice.get("tool") or {}).get("name")
    return {"function": {"name": name}} if name else None


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty array")
    config = body.get("toolConfig") or {}
    tools = [{"name": (t.get("toolSpec") or {}).get("name")} for t in config.get("tools") or []]
    return {
        "messages": [_message(m) for m in messages],
        "system": "\n".join(str(b.get("text", "")) for b in body.get("system") or []),
        "tools": tools or None,
        "tool_choice": _tool_choice(config.get("toolChoice")),
    }


def _usage(call: wire.Call, answer: wire.Answer) -> dict[str, Any]:
    prompt = call.prompt_tokens if answer.prompt_tokens is None else answer.prompt_tokens
    cached = wire.cached_tokens(call)
    return {
        "inputTokens": max(prompt - cached, 0),
        "outputTokens": answer.completion_tokens,
        "totalTokens": prompt + answer.completion_tokens,
        "cacheReadInputTokens": cached,
        "cacheWriteInputTokens": 0,
    }


def _content(answer: wire.Answer, ident: str, fault: str) -> tuple[list[Any], str]:
    if fault == "filtered":
        return [], "content_filtered"
    if fault == "content_policy":
        return [{"text": GUARDRAIL_TEXT}], "guardrail_intervened"
    blocks: list[Any] = [{"text": answer.text}] if answer.text or not answer.calls else []
    for i, spec in enumerate(answer.calls):
        use = {"toolUseId": f"tooluse_{ident}_{i}", "name": spec.name,
               "input": wire.loads(spec.arguments.encode())}  # fmt: skip
        blocks.append({"toolUse": use})
    return blocks, "tool_use" if answer.calls else "end_turn"


class Bedrock:
    name = "bedrock"
    stream_headers: ClassVar[dict[str, str]] = {"Content-Type": EVENT_STREAM}

    def match(self, method: str, path: str) -> tuple[str, bool] | None:
        found = _PATH.match(path) if method == "POST" else None
        return None if found is None else (found.group(1), found.group(2) == "converse-stream")

    def refuse(self, request: web.BaseRequest) -> web.Response | None:
        signed = request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 ")
        if signed and request.headers.get("x-amz-date"):
            return None
        return _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")

    def parse(self, model: str, stream: bool, body: Any) -> wire.Call:
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        return chat_call(self.name, model, stream, _chat(body), body)

    def answer(self, call: wire.Call, answer: wire.Answer, ident: str, fault: str) -> bytes:
        content, stop = _content(answer, ident, fault)
        out: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "metrics": {"latencyMs": 5},
        }
        if wire.usage_enabled(call):
            out["usage"] = _usage(call, answer)
        return wire.dumps(out)

    def stream(
        self, call: wire.Call, answer: wire.Answer, ident: str, fault: str
    ) -> wire.StreamPlan:
        content, stop = _content(answer, ident, fault)
        head = [_event("messageStart", {"role": "assistant"})]
        frames = [_event(kind, data) for kind, data in _block_events(content)]
        tail = [_event("messageStop", {"stopReason": stop})]
        if wire.usage_enabled(call):
            tail.append(
                _event("metadata", {"usage": _usage(call, answer), "metrics": {"latencyMs": 5}})
            )
        return wire.StreamPlan(head, frames, tail)

    def error(self, call: wire.Call, fault: str, retry: str) -> web.Response:
        if fault == "content_policy":
            if call.stream:
                return _stream_body(self.stream(call, wire.Answer("", 0), "", fault))
            return web.Response(
                body=self.answer(call, wire.Answer("", 0), "", fault),
                content_type="application/json",
            )
        status, kind, message = _ERRORS["503" if fault == "529" else fault]
        return _error(status, kind, message)

    def bad_request(self, message: str) -> web.Response:
        return _error(400, "ValidationException", message)

    def invalid_frame(self) -> bytes:
        headers = {":event-type": "contentBlockDelta", ":content-type": "application/json",
                   ":message-type": "event"}  # fmt: skip
        return event_frame(headers, b'{"contentBlockIndex": 0, oops')


def _block_events(content: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    for index, block in enumerate(content):
        if "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            args = wire.dumps(use["input"]).decode()
            pieces = [args[i : i + 4] for i in range(0, len(args), 4)]
            deltas: list[Any] = [{"toolUse": {"input": p}} for p in pieces]
        else:
            words = re.findall(r"\s*\S+", block["text"])
            deltas = [{"text": "".join(words[i : i + 2])} for i in range(0, len(words), 2)]
        events += [("contentBlockDelta", {"contentBlockIndex": index, "delta": d}) for d in deltas]
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    return events


def _stream_body(plan: wire.StreamPlan) -> web.Response:
    return web.Response(
        body=b"".join(plan.frames()), content_type="application/vnd.amazon.eventstream"
    )


def _error(status: int, kind: str, message: str) -> web.Response:
    return json_response(status, {"message": message}, {"x-amzn-ErrorType": kind + _CORAL})


BEDROCK = Bedrock()
