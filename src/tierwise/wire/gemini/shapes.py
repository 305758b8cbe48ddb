"""Gemini shapes: finish reasons, content parts, usage and error bodies."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tierwise.errors import (
    ContextWindowError,
    ProviderError,
    RateLimitedError,
    UpstreamAuthError,
    UpstreamServerError,
)
from tierwise.types import JSON, TokenLogprob, ToolCall, Usage
from tierwise.wire.status import CONTEXT_MARKERS, error_for_status

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}
"""Gemini's `finishReason` to the neutral (OpenAI) finish reasons."""
STATUS_KINDS: dict[int, type[ProviderError]] = {
    401: UpstreamAuthError,
    403: UpstreamAuthError,
    404: UpstreamServerError,
    413: ContextWindowError,
    429: RateLimitedError,
}
TOKEN_LIMIT_MARKERS = (*CONTEXT_MARKERS, "input token count", "maximum number of tokens")
DEPLOYMENT_FAULTS = ("UNAUTHENTICATED", "PERMISSION_DENIED", "FAILED_PRECONDITION")
"""Statuses that say this deployment's key or project cannot serve (a bad key,
billing not enabled, a region the API does not serve): `auth`, not the request."""
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def finish_reason(raw: Any, has_calls: bool) -> str | None:
    """The neutral finish reason; a turn that ends in function calls is `tool_calls`."""
    if raw is None:
        return None
    reason = FINISH_REASONS.get(str(raw), "stop")
    return "tool_calls" if has_calls and reason == "stop" else reason


def part_from_url(url: str) -> JSON:
    """An OpenAI image part's URL as a Gemini part: data URLs inline, others by URI."""
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"inlineData": {"mimeType": media, "data": data}}
    return {"fileData": {"mimeType": _media_type(url), "fileUri": url}}


def _media_type(url: str) -> str:
    suffix = url.rsplit(".", 1)[-1].lower().split("?")[0]
    return {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "webp": "image/webp",
        "gif": "image/gif",
    }.get(suffix, "image/png")


def call_to_part(call: ToolCall) -> JSON:
    return {"functionCall": {"name": call.name, "args": loads_object(call.arguments)}}


def part_to_call(part: JSON, fallback_id: str) -> ToolCall:
    function = part.get("functionCall") or {}
    arguments = orjson.dumps(function.get("args") or {}).decode()
    return ToolCall(
        str(function.get("id") or fallback_id), str(function.get("name", "")), arguments
    )


def loads_object(text: str | None) -> JSON:
    """Text as a JSON object; anything else is wrapped as `{"content": text}`."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def decode_usage(raw: Any) -> Usage | None:
    """`usageMetadata`: prompt tokens include cached ones; thinking tokens are output."""
    if not isinstance(raw, dict) or "promptTokenCount" not in raw:
        return None
    prompt = int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0)
    output = int(raw.get("candidatesTokenCount") or 0) + int(raw.get("thoughtsTokenCount") or 0)
    return Usage(prompt, output, int(raw.get("cachedContentTokenCount") or 0))


def decode_logprobs(raw: Any) -> list[TokenLogprob] | None:
    chosen = raw.get("chosenCandidates") if isinstance(raw, dict) else None
    if not isinstance(chosen, list):
        return None
    return [TokenLogprob(str(c.get("token", "")), float(c["logProbability"])) for c in chosen]


def retry_delay(details: Any) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"37s"`), if one is given."""
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            found = _DELAY.match(str(detail.get("retryDelay", "")))
            if found:
                return float(found.group(1))
    return None


def classify_error(status: int, body: Any, retry_after: float | None) -> ProviderError:
    """A Google error body (`{"error": {code, message, status, details}}`) in the taxonomy."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {"message": str(body)[:300]}
    message = str(error.get("message") or "")[:500]
    code = str(error.get("status") or "")
    reasons = " ".join(
        str(d.get("reason", "")) for d in error.get("details") or [] if isinstance(d, dict)
    )
    if status == 429 or code == "RESOURCE_EXHAUSTED":
        delay = retry_delay(error.get("details"))
        return RateLimitedError(message, status=status, retry_after_s=retry_after or delay)
    if "API_KEY_INVALID" in reasons or code in DEPLOYMENT_FAULTS:
        return UpstreamAuthError(message, status=status)
    if status in (400, 413) and any(m in message.lower() for m in TOKEN_LIMIT_MARKERS):
        return ContextWindowError(message, status=status)
    return error_for_status(status, message, STATUS_KINDS, retry_after)
