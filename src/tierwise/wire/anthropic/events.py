"""Neutral stream deltas to the Anthropic stream events the gateway sends."""

from __future__ import annotations

from typing import Any

from tierwise.types import StreamDelta, ToolCallDelta, Usage
from tierwise.wire.anthropic.shapes import encode_usage, stop_reason, tool_id


class EventEncoder:
    """Neutral deltas to Anthropic stream events (`(event, data)` pairs)."""

    def __init__(self, message_id: str, model: str) -> None:
        self._id, self._model = message_id, model
        self._block: tuple[str, int] | None = None
        self._next_index = 0
        self._tools: dict[int, int] = {}
        self._stop_reason = "end_turn"
        self.usage = Usage()

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": encode_usage(None),
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def feed(self, delta: StreamDelta) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.index != 0:
            return events
        if delta.text:
            events += self._open(("text", 0), {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": delta.text}))
        for call in delta.tool_calls or ():
            events += self._tool_events(call)
        if delta.finish_reason:
            self._stop_reason = stop_reason(delta.finish_reason)
        return events

    def _tool_events(self, call: ToolCallDelta) -> list[tuple[str, dict[str, Any]]]:
        events = self._open(
            ("tool", call.index),
            {
                "type": "tool_use",
                "id": tool_id(call.id or ""),
                "name": call.name or "",
                "input": {},
            },
        )
        if call.arguments:
            events.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments}))
        return events

    def _open(
        self, key: tuple[str, int], block: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        if (
            self._block is not None
            and self._block[0] == key[0]
            and (key[0] == "text" or self._tools.get(key[1]) == self._block[1])
        ):
            return []
        events = self._close()
        index = self._next_index
        self._next_index += 1
        if key[0] == "tool":
            self._tools[key[1]] = index
        self._block = (key[0], index)
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return events

    def _delta(self, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        index = self._block[1] if self._block else 0
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if self._block is None:
            return []
        index, self._block = self._block[1], None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        usage = encode_usage(self.usage)
        return [
            *self._close(),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": usage,
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
