"""The Responses API's stream events, from chat stream deltas: `response.created`,
`response.in_progress`, per output item `response.output_item.added`, its content
(`response.content_part.added`, `response.output_text.delta`/`.done`,
`response.content_part.done`, or `response.function_call_arguments.delta`/`.done`),
`response.output_item.done`, and `response.completed` (or `response.failed`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tierwise.types import JSON, StreamDelta, ToolCall, ToolCallDelta
from tierwise.wire.openai.responses import function_item, message_item

Event = tuple[str, JSON]


@dataclass(slots=True)
class _Item:
    index: int
    item_id: str
    text: str = ""
    call: ToolCall | None = None

    def done(self) -> JSON:
        if self.call is not None:
            return function_item(self.item_id, self.call)
        return message_item(self.item_id, self.text)


@dataclass(slots=True)
class ResponseEvents:
    """Events of one streamed response; `envelope(status, output)` builds the
    `response` object the first and last events carry."""

    response_id: str
    envelope: Callable[[str, list[JSON]], JSON]
    items: list[_Item] = field(default_factory=list)
    _message: _Item | None = None
    _calls: dict[int, tuple[_Item, ToolCall]] = field(default_factory=dict)
    _sequence: int = 0

    def _event(self, kind: str, **body: object) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **body}
        self._sequence += 1
        return kind, event

    def start(self) -> list[Event]:
        response = self.envelope("in_progress", [])
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def feed(self, delta: StreamDelta) -> list[Event]:
        events: list[Event] = []
        if delta.text:
            events += self._text(delta.text)
        for call in delta.tool_calls or []:
            events += self._call(call)
        return events

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        item = self._message
        if item is None:
            item = self._message = self._open(f"msg_{self.response_id}")
            events.append(self._added(item, message_item(item.item_id, "", "in_progress")))
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(self._event("response.content_part.added", **self._at(item), part=part))
        item.text += text
        events.append(self._event("response.output_text.delta", **self._at(item), delta=text))
        return events

    def _call(self, delta: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        found = self._calls.get(delta.index)
        if found is None:
            item = self._open(f"fc_{self.response_id}_{delta.index}")
            call_id = delta.id or f"call_{self.response_id}_{delta.index}"
            item.call = call = ToolCall(call_id, delta.name or "", "")
            self._calls[delta.index] = item, call
            events.append(self._added(item, function_item(item.item_id, call, "in_progress")))
        else:
            item, call = found
        if delta.name and not call.name:
            call.name = delta.name
        if delta.arguments:
            call.arguments += delta.arguments
            where = {"item_id": item.item_id, "output_index": item.index}
            kind = "response.function_call_arguments.delta"
            events.append(self._event(kind, **where, delta=delta.arguments))
        return events

    def _open(self, item_id: str) -> _Item:
        item = _Item(len(self.items), item_id)
        self.items.append(item)
        return item

    def _added(self, item: _Item, body: JSON) -> Event:
        return self._event("response.output_item.added", output_index=item.index, item=body)

    @staticmethod
    def _at(item: _Item) -> JSON:
        return {"item_id": item.item_id, "output_index": item.index, "content_index": 0}

    def output(self) -> list[JSON]:
        return [item.done() for item in self.items]

    def finish(self) -> list[Event]:
        """Close every item, then `response.completed` with the whole output."""
        events: list[Event] = []
        for item in self.items:
            if item.call is not None:
                where = {"item_id": item.item_id, "output_index": item.index}
                kind = "response.function_call_arguments.done"
                events.append(self._event(kind, **where, arguments=item.call.arguments))
            else:
                part = message_item(item.item_id, item.text)["content"][0]
                kind = "response.output_text.done"
                events.append(self._event(kind, **self._at(item), text=item.text))
                events.append(
                    self._event("response.content_part.done", **self._at(item), part=part)
                )
            events.append(
                self._event("response.output_item.done", output_index=item.index, item=item.done())
            )
        response = self.envelope("completed", self.output())
        events.append(self._event("response.completed", response=response))
        return events

    def failed(self, message: str) -> list[Event]:
        response = self.envelope("failed", self.output())
        response["error"] = {"code": "server_error", "message": message}
        return [self._event("response.failed", response=response)]
