"""Azure OpenAI for the fake upstream: deployment paths, `api-version`, the
`api-key` header, Azure's rate-limit and content-filter errors."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tierwise.testing import _fake_errors as errors
from tierwise.testing import _fake_wire as wire
from tierwise.testing._fake_dialects import SSE_HEADERS, chat_call, json_response

_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_FILTER = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our "
    "content filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SAFE = {"filtered": False, "severity": "safe"}
_RESULTS = {k: _SAFE for k in ("hate", "self_harm", "sexual", "violence")}


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": None, "type": None, **extra}}


class Azure:
    name = "azure"
    stream_headers = SSE_HEADERS

    def match(self, method: str, path: str) -> tuple[str, bool] | None:
        found = _PATH.match(path) if method == "POST" else None
        return None if found is None else (found.group(1), False)

    def refuse(self, request: web.BaseRequest) -> web.Response | None:
        if "api-version" not in request.query:
            return json_response(404, {"error": {"code": "404", "message": "Resource not found"}})
        if not request.headers.get("api-key"):
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource."
            )
            return json_response(401, {"error": {"code": "401", "message": message}})
        return None

    def parse(self, model: str, stream: bool, body: Any) -> wire.Call:
        if not isinstance(body, dict):
            raise ValueError("request body must be a JSON object")
        return chat_call(self.name, model, body.get("stream") is True, body, body)

    def answer(self, call: wire.Call, answer: wire.Answer, ident: str, fault: str) -> bytes:
        out = wire.openai_completion(call, answer, ident, 1_700_000_000)
        out["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _RESULTS}]
        choice = out["choices"][0]
        choice["content_filter_results"] = _RESULTS
        if fault == "filtered":
            choice["message"]["content"] = None
            choice["finish_reason"] = "content_filter"
            choice["content_filter_results"] = {**_RESULTS, "violence": {"filtered": True}}
        return wire.dumps(out)

    def stream(
        self, call: wire.Call, answer: wire.Answer, ident: str, fault: str
    ) -> wire.StreamPlan:
        plan = wire.openai_stream(call, answer, ident, 1_700_000_000)
        if fault == "filtered":
            plan.content = []
            plan.tail[0] = plan.tail[0].replace(
                b'"finish_reason":"stop"', b'"finish_reason":"content_filter"'
            )
        return plan

    def error(self, call: wire.Call, fault: str, retry: str) -> web.Response:
        if fault == "429":
            message = (
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
                "version 2024-10-21 have exceeded token rate limit of your current "
                f"AIServices S0 pricing tier. Please retry after {retry} seconds."
            )
            millis = str(int(float(retry) * 1000))
            headers = {"retry-after": retry, "retry-after-ms": millis}
            return json_response(429, _error("429", message), headers)
        if fault == "content_policy":
            flagged = {**_RESULTS, "hate": {"filtered": True, "severity": "high"}}
            inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": flagged}
            body = _error("content_filter", _FILTER, param="prompt", innererror=inner)
            body["error"]["status"] = 400
            return json_response(400, body)
        other = "503" if fault == "529" else fault  # Azure has no 529
        status, payload = errors.error_payload(wire.OPENAI, other, call.model, retry)
        return json_response(status, payload)

    def bad_request(self, message: str) -> web.Response:
        return json_response(400, errors.openai_error(message, "invalid_request_error"))

    def invalid_frame(self) -> bytes:
        return wire.invalid_json_frame(wire.OPENAI)


AZURE = Azure()
