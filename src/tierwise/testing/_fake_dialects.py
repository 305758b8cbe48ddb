"""Wire formats the fake upstream speaks beyond `/v1/chat/completions` and
`/v1/messages`: Azure OpenAI, Gemini and Bedrock, each in its own module. A
dialect finds its requests by path, turns their bodies into a `Call` (through a
chat body of the fake's own shape, so that directives, scripts and tool choice
work as for every format) and writes answers, streams and faults its own way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from tierwise.testing import _fake_wire as wire

EXTRA_FAULTS = frozenset({"filtered"})
"""`filtered`: the answer is withheld by the provider's output filter (a 200)."""
JSON_TYPE = "application/json"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass(frozen=True, slots=True)
class Routed:
    """A request a dialect claimed: its model and whether the path asks to stream."""

    dialect: Dialect
    model: str
    stream: bool


class Dialect(Protocol):
    name: str

    def match(self, method: str, path: str) -> tuple[str, bool] | None:
        """(model, stream) for a path of this dialect, else None."""
        ...

    def refuse(self, request: web.BaseRequest) -> web.Response | None:
        """The error for a request missing what the real service insists on."""
        ...

    def parse(self, model: str, stream: bool, body: Any) -> wire.Call:
        """The call; raise ValueError for a malformed body."""
        ...

    def answer(self, call: wire.Call, answer: wire.Answer, ident: str, fault: str) -> bytes: ...

    def stream(
        self, call: wire.Call, answer: wire.Answer, ident: str, fault: str
    ) -> wire.StreamPlan: ...

    @property
    def stream_headers(self) -> Mapping[str, str]: ...

    def error(self, call: wire.Call, fault: str, retry: str) -> web.Response: ...

    def bad_request(self, message: str) -> web.Response: ...

    def invalid_frame(self) -> bytes: ...


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=wire.dumps(payload), content_type=JSON_TYPE, headers=headers
    )


def chat_call(kind: str, model: str, stream: bool, chat: dict[str, Any], raw: Any) -> wire.Call:
    """The call for a chat body of the fake's own shape; `raw` is what was sent
    and what the fake records."""
    call = wire.parse_call(kind, {**chat, "model": model})
    call.stream = stream
    call.body = {**chat, "raw": raw}
    return call


def raw_body(call: wire.Call) -> Any:
    return call.body.get("raw", call.body)


def route(dialects: list[Dialect], method: str, path: str) -> Routed | None:
    for dialect in dialects:
        found = dialect.match(method, path)
        if found is not None:
            return Routed(dialect, *found)
    return None
