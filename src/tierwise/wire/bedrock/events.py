"""ConverseStream events (each a JSON payload named by its `:event-type`) to deltas."""

from __future__ import annotations

from typing import Any

import orjson

from tierwise.errors import ContentPolicyError, InvalidResponseError
from tierwise.types import JSON, StreamDelta, ToolCallDelta
from tierwise.wire.bedrock.outbound import FILTERED, STOP_REASONS, classify_error, decode_usage


class StreamDecoder:
    """Events to deltas; keeps tool-block indexes. The stream is over once
    `messageStop` has come (`metadata`, with the usage, follows it)."""

    def __init__(self) -> None:
        self.stopped = False
        self._tools: dict[int, int] = {}
        self._produced = False

    def feed(self, headers: dict[str, Any], payload: bytes) -> list[StreamDelta]:
        if headers.get(":message-type") == "exception":
            raise classify_error(
                500, str(headers.get(":exception-type", "")), _loads(payload), None
            )
        handler = getattr(self, f"_on_{headers.get(':event-type', '')}", None)
        return handler(_loads(payload)) if handler else []

    def _on_messageStart(self, data: JSON) -> list[StreamDelta]:
        return [StreamDelta(role=str(data.get("role") or "assistant"))]

    def _on_contentBlockStart(self, data: JSON) -> list[StreamDelta]:
        use = (data.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        slot = self._tools.setdefault(int(data.get("contentBlockIndex", 0)), len(self._tools))
        self._produced = True
        return [
            StreamDelta(tool_calls=[ToolCallDelta(slot, use.get("toolUseId"), use.get("name"))])
        ]

    def _on_contentBlockDelta(self, data: JSON) -> list[StreamDelta]:
        delta = data.get("delta") or {}
        if "text" in delta:
            self._produced = self._produced or bool(delta["text"])
            return [StreamDelta(text=str(delta["text"]))]
        use = delta.get("toolUse")
        if isinstance(use, dict):
            slot = self._tools.get(int(data.get("contentBlockIndex", 0)), 0)
            return [
                StreamDelta(tool_calls=[ToolCallDelta(slot, arguments=str(use.get("input", "")))])
            ]
        return []

    def _on_messageStop(self, data: JSON) -> list[StreamDelta]:
        stop = data.get("stopReason")
        if stop == FILTERED and not self._produced:
            raise ContentPolicyError(f"the answer was stopped: {stop}")
        self.stopped = True
        return [StreamDelta(finish_reason=STOP_REASONS.get(str(stop), "stop"))]

    def _on_metadata(self, data: JSON) -> list[StreamDelta]:
        usage = decode_usage(data.get("usage"))
        return [] if usage is None else [StreamDelta(usage=usage)]


def _loads(payload: bytes) -> Any:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidResponseError("stream event is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidResponseError("stream event is not an object")
    return value
