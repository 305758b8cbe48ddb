"""What upstream error bodies of every format say about the error's kind."""

from __future__ import annotations

from tierwise.providers.base import error_for_status

__all__ = ["CONTEXT_MARKERS", "POLICY_MARKERS", "error_for_status"]

CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "too many tokens",
    "prompt is too long",
    "exceeds the context",
)
POLICY_MARKERS = (
    "content_policy",
    "content_filter",
    "content management policy",
    "safety system",
    "flagged",
    "content filtering",
)
