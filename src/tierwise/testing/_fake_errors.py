"""Error faults of the fake upstream in the OpenAI and Anthropic wire formats."""

from __future__ import annotations

from typing import Any

from tierwise.testing._fake_wire import ANTHROPIC

_OPENAI_ERRORS: dict[str, tuple[int, str, str, str | None, str | None]] = {
    "500": (500, "The server had an error while processing your request. Sorry about that!",
            "server_error", None, None),
    "503": (503, "The server is overloaded or not ready yet.", "server_error", None, None),
    "529": (529, "The server is overloaded.", "server_error", None, "overloaded"),
    "429": (429, "Rate limit reached for {model}. Please try again in {retry}s.",
            "rate_limit_exceeded", None, "rate_limit_exceeded"),
    "context_length": (400, "This model's maximum context length is 8192 tokens. However, your "
                       "messages resulted in 9000 tokens. Please reduce the length of the "
                       "messages.", "invalid_request_error", "messages",
                       "context_length_exceeded"),
    "content_policy": (400, "The response was filtered due to the prompt triggering the content "
                       "management policy (content filter). Please modify your prompt and "
                       "retry.", "invalid_request_error", "prompt", "content_policy_violation"),
    "auth": (401, "Incorrect API key provided. You can find your API key in your account "
             "settings.", "invalid_request_error", None, "invalid_api_key"),
    "bad_request": (400, "Invalid value for 'temperature': expected a number between 0 and 2.",
                    "invalid_request_error", "temperature", None),
}  # fmt: skip

_ANTHROPIC_ERRORS: dict[str, tuple[int, str, str]] = {
    "500": (500, "api_error", "Internal server error"),
    "503": (503, "overloaded_error", "Overloaded"),
    "529": (529, "overloaded_error", "Overloaded"),
    "429": (429, "rate_limit_error", "Number of requests to {model} has exceeded your rate "
            "limit. Please try again in {retry}s."),
    "context_length": (400, "invalid_request_error", "prompt is too long: 9000 tokens > 8192 "
                       "maximum"),
    "content_policy": (400, "invalid_request_error", "Output blocked by content filtering "
                       "policy"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "bad_request": (400, "invalid_request_error", "temperature: Input should be less than or "
                    "equal to 1"),
}  # fmt: skip


def is_error_fault(fault: str) -> bool:
    """True for faults answered with an HTTP error status."""
    return fault in _OPENAI_ERRORS


def error_payload(wire: str, fault: str, model: str, retry: str) -> tuple[int, dict[str, Any]]:
    """Status and body of an error fault in the wire format of `wire`."""
    if wire == ANTHROPIC:
        status, etype, msg = _ANTHROPIC_ERRORS[fault]
        return status, anthropic_error(etype, msg.format(model=model, retry=retry))
    status, msg, etype, param, code = _OPENAI_ERRORS[fault]
    return status, openai_error(msg.format(model=model, retry=retry), etype, param, code)


def openai_error(
    message: str, etype: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI error body."""
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def anthropic_error(etype: str, message: str) -> dict[str, Any]:
    """An Anthropic error body."""
    return {"type": "error", "error": {"type": etype, "message": message}}
