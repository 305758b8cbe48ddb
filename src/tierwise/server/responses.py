"""`POST /v1/responses`: OpenAI's Responses API answered through chat (every provider
speaks chat), plain or streamed; `previous_response_id` continues a conversation kept
in memory on this replica for `StoredResponses.ttl_s`."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tierwise.errors import RequestError, StreamInterruptedError
from tierwise.gateway import Gateway
from tierwise.server.admission import Caller, admit, caller_of
from tierwise.server.auth import ApiKey, check_model
from tierwise.server.headers import CLIENT_RID, record_headers
from tierwise.streaming import ChatStream
from tierwise.types import JSON, ChatRequest, ChatResponse, Message, Usage
from tierwise.wire.openai import responses as wire
from tierwise.wire.openai.response_events import Event, ResponseEvents

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


class StoredResponses:
    """Conversations by response id (instructions left out, as OpenAI does), newest
    last; entries expire after `ttl_s` and the oldest go beyond `capacity`."""

    def __init__(
        self,
        ttl_s: float = 3600.0,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.capacity, self._clock = ttl_s, capacity, clock
        self._items: OrderedDict[str, tuple[float, list[Message]]] = OrderedDict()

    def put(self, response_id: str, messages: list[Message]) -> None:
        self._items[response_id] = (self._clock() + self.ttl_s, messages)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> list[Message] | None:
        found = self._items.get(response_id)
        if found is None:
            return None
        expires, messages = found
        if expires <= self._clock():
            del self._items[response_id]
            return None
        return messages


STORED: web.AppKey[StoredResponses] = web.AppKey("stored_responses", StoredResponses)


def _history(call: wire.ResponsesCall, stored: StoredResponses) -> list[Message]:
    if call.previous_id is None:
        return []
    history = stored.get(call.previous_id)
    if history is None:
        raise RequestError(
            f"previous response {call.previous_id!r} not found (expired, or not stored here)",
            param="previous_response_id",
            status=404,
        )
    return history


async def _admit(gateway: Gateway, key: ApiKey | None, chat: ChatRequest) -> Caller:
    caller = caller_of(key, chat)
    await admit(gateway.state.limiter, caller, chat)
    return caller


async def answer(
    request: web.Request, gateway: Gateway, key: ApiKey | None, rid: str, body: Any
) -> web.StreamResponse:
    """Map the request to chat (after the stored conversation it continues), answer,
    and store the conversation under the new response's id."""
    call = wire.decode_request(body)
    check_model(key, call.model)
    gateway.targets.get(call.model)
    stored = request.app[STORED]
    chat = call.chat(_history(call, stored))
    caller = await _admit(gateway, key, chat)
    turn = _Turn(call, chat, f"resp_{rid}", int(time.time()))
    if call.stream:
        stream = await gateway.stream(
            chat,
            request_id=rid,
            origin=caller.origin(request[CLIENT_RID]),
        )
        return await _stream(request, stream, turn)
    result = await gateway.chat(
        chat,
        request_id=rid,
        origin=caller.origin(request[CLIENT_RID]),
    )
    response_id, created = turn.response_id, turn.created
    deployment = gateway.deployments.get(result.record.final_deployment or "")
    model = deployment.model if deployment else result.record.route
    output = wire.output_items(response_id, result.response)
    payload = wire.encode_response(call, response_id, model, created, output, result.response.usage)
    if call.store:
        stored.put(response_id, _conversation(call, chat, result.response))
    return web.Response(
        body=orjson.dumps(payload),
        content_type="application/json",
        headers=record_headers(result.record),
    )


def _conversation(
    call: wire.ResponsesCall, chat: ChatRequest, answer: ChatResponse
) -> list[Message]:
    """The request's messages without its instructions, and the answer."""
    skip = 1 if call.instructions else 0
    reply = Message("assistant", answer.text() or None, tool_calls=answer.tool_calls() or None)
    return [*chat.messages[skip:], reply]


def _sse(events: list[Event]) -> bytes:
    return b"".join(
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"
        for kind, body in events
    )


@dataclass(frozen=True, slots=True)
class _Turn:
    call: wire.ResponsesCall
    chat: ChatRequest
    response_id: str
    created: int


async def _stream(request: web.Request, stream: ChatStream, turn: _Turn) -> web.StreamResponse:
    """The answer as Responses API events; the conversation is stored at the end."""
    call, model = turn.call, stream.deployment.model
    seen: list[Usage | None] = [None]

    def envelope(status: str, output: list[JSON]) -> JSON:
        return wire.encode_response(
            call, turn.response_id, model, turn.created, output, seen[0], status
        )

    events = ResponseEvents(turn.response_id, envelope)
    async with stream:
        headers = record_headers(stream.record)
        headers.pop("x-tierwise-cost-usd", None)
        response = web.StreamResponse(headers={**SSE_HEADERS, **headers})
        await response.prepare(request)
        await response.write(_sse(events.start()))
        try:
            async for delta in stream:
                found = events.feed(delta)
                if found:
                    await response.write(_sse(found))
        except StreamInterruptedError as exc:
            await response.write(_sse(events.failed(f"upstream stream failed: {exc}")))
            return response
        answer = stream.response()
        seen[0] = answer.usage or stream.record.attempts[-1].usage
        await response.write(_sse(events.finish()))
    if call.store:
        request.app[STORED].put(turn.response_id, _conversation(call, turn.chat, answer))
    return response
