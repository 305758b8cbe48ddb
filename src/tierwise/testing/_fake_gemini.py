"""Gemini `generateContent` and `streamGenerateContent?alt=sse` for the fake
upstream: Gemini's contents and parts in, candidates and `usageMetadata` out,
Google's error bodies (a 429 carries its delay in `RetryInfo`, not a header)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tierwise.testing import _fake_wire as wire
from tierwise.testing._fake_dialects import SSE_HEADERS, chat_call, json_response

_PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")
_STATUS = {
    "429": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your "
            "plan and billing details."),
    "500": (500, "INTERNAL", "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting"),
    "503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "context_length": (400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the "
                       "maximum number of tokens allowed (1048576)."),
    "auth": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    "bad_request": (400, "INVALID_ARGUMENT", "Invalid value at 'generation_config.temperature' "
                    '(TYPE_FLOAT), "hot"'),
}  # fmt: skip
_BLOCKED = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]


def google_error(status: int, code: str, message: str, details: list[Any]) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": code, "details": details}}


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "\n".join(str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p)


def _message(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
        raise ValueError("each content needs parts")
    parts = content["parts"]
    if any(isinstance(p, dict) and "functionResponse" in p for p in parts):
        return {"role": "tool", "content": "function response"}
    role = "assistant" if content.get("role") == "model" else "user"
    return {"role": role, "content": _text(parts)}


def _tool_choice(config: Any) -> Any:
    mode = ((config or {}).get("functionCallingConfig") or {}).get("mode")
    if mode == "NONE":
        return "none"
    if mode != "ANY":
        return None
    names = config["functionCallingConfig"].get("allowedFunctionNames") or []
    return {"function": {"name": names[0]}} if len(names) == 1 else "required"


def _chat(body: dict[str, Any]) -> dict[str, Any]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ValueError("contents must be a non-empty array")
    generation = body.get("generationConfig") or {}
    tools = [
        {"name": fd.get("name")}
        for tool in body.get("tools") or []
        for fd in tool.get("functionDeclarations") or []
    ]
    chat: dict[str, Any] = {"messages": [_message(c) for c in contents], "tools": tools or None}
    chat["system"] = _text((body.get("systemInstruction") or {}).get("parts"))
    chat["tool_choice"] = _tool_choice(body.get("toolConfig"))
    if generation.get("responseMimeType") == "application/json":
        chat["response_format"] = {"type": "json_object"}
    chat["logprobs"] = generation.get("responseLogprobs") is True
    return chat


def _usage(call: wire.Call, answer: wire.Answer, final: bool = True) -> dict[str, Any]:
    prompt = call.prompt_tokens if answer.prompt_tokens is None else answer.prompt_tokens
    out = answer.completion_tokens if final else 0
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": out,
        "totalTokenCount": prompt + out,
    }
    if wire.cached_tokens(call):
        usage["cachedContentTokenCount"] = wire.cached_tokens(call)
    return usage


def _response(call: wire.Call, ident: str, candidate: dict[str, Any] | None, usage: Any) -> bytes:
    out: dict[str, Any] = {"modelVersion": call.model, "responseId": ident}
    if candidate is not None:
        out["candidates"] = [{**candidate, "index": 0}]
    if usage is not None and wire.usage_enabled(call):
        out["usageMetadata"] = usage
    return wire.dumps(out)


def _calls(answer: wire.Answer) -> list[Any]:
    return [
        {"functionCall": {"name": c.name, "args": wire.loads(c.arguments.encode())}}
        for c in answer.calls
    ]


def _candidate(
    answer: wire.Answer, fault: str, text: str | None = None, calls: bool = True
) -> dict[str, Any]:
    if fault == "filtered":
        return {"finishReason": "SAFETY", "safetyRatings": _BLOCKED}
    said = answer.text if text is None else text
    parts: list[Any] = [{"text": said}] if said or not answer.calls else []
    out: dict[str, Any] = {
        "content": {"role": "model", "parts": parts + (_calls(answer) if calls else [])}
    }
    if answer.logprob is not None and said:
        chosen = [{"token": t, "logProbability": answer.logprob} for t in said.split()]
        out["logprobsResult"] = {"chosenCandidates": chosen, "topCandidates": []}
    return out


def _sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\r\n\r\n"


class Gemini:
    name = "gemini"
    stream_headers = SSE_HEADERS

    def match(self, method: str, path: str) -> tuple[str, bool] | None:
        found = _PATH.match(path) if method == "POST" else None
        if found is None:
            return None
        return found.group(1), found.group(2) == "streamGenerateContent"

    def refuse(self, request: web.BaseRequest) -> web.Response | None:
        if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            message = (
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API."
            )
            return json_response(403, google_error(403, "PERMISSION_DENIED", message, []))
        if request.path.endswith(":streamGenerateContent") and request.query.get("alt") != "sse":
            return self.bad_request("this fake streams only with alt=sse")
        return None

    def parse(self, model: str, stream: bool, body: Any) -> wire.Call:
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        return chat_call(self.name, model, stream, _chat(body), body)

    def answer(self, call: wire.Call, answer: wire.Answer, ident: str, fault: str) -> bytes:
        candidate = {**_candidate(answer, fault), "finishReason": "STOP"}
        if fault == "filtered":
            candidate = _candidate(answer, fault)
        return _response(call, ident, candidate, _usage(call, answer))

    def stream(
        self, call: wire.Call, answer: wire.Answer, ident: str, fault: str
    ) -> wire.StreamPlan:
        running = _usage(call, answer, final=False)
        content: list[dict[str, Any]] = []
        if fault != "filtered" and (answer.text or not answer.calls):
            content = [_candidate(answer, fault, p, calls=False) for p in _pieces(answer.text)]
        if fault != "filtered" and answer.calls:
            content.append({"content": {"role": "model", "parts": _calls(answer)}})
        frames = [_sse(_response(call, ident, c, running)) for c in content]
        last = _candidate(answer, fault)
        if fault != "filtered":
            last = {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}
        tail = [_sse(_response(call, ident, last, _usage(call, answer)))]
        return wire.StreamPlan([], frames, tail)

    def error(self, call: wire.Call, fault: str, retry: str) -> web.Response:
        if fault == "content_policy":
            prompt = _usage(call, wire.Answer("", 0), final=False)
            feedback = {"blockReason": "SAFETY", "safetyRatings": _BLOCKED}
            body = wire.loads(_response(call, "blocked", None, prompt))
            body["promptFeedback"] = feedback
            if call.stream:
                return web.Response(body=_sse(wire.dumps(body)), headers=SSE_HEADERS)
            return json_response(200, body)
        status, code, message = _STATUS["503" if fault == "529" else fault]
        details: list[Any] = []
        if fault == "429":
            details = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"}
            ]
        if fault == "auth":
            info = {"reason": "API_KEY_INVALID", "domain": "googleapis.com"}
            details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", **info}]
        return json_response(status, google_error(status, code, message, details))

    def bad_request(self, message: str) -> web.Response:
        return json_response(400, google_error(400, "INVALID_ARGUMENT", message, []))

    def invalid_frame(self) -> bytes:
        return b'data: {"candidates": [oops not json\r\n\r\n'


def _pieces(text: str) -> list[str]:
    words = re.findall(r"\s*\S+", text)
    return ["".join(words[i : i + 2]) for i in range(0, len(words), 2)] or [""]


GEMINI = Gemini()
