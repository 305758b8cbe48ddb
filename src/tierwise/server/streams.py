"""Server-sent events for both wire formats, over a committed `ChatStream`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tierwise.errors import StreamInterruptedError
from tierwise.gateway import Gateway
from tierwise.record import RequestRecord
from tierwise.server.admission import Caller
from tierwise.server.headers import CLIENT_RID, record_headers
from tierwise.streaming import ChatStream
from tierwise.types import ChatRequest, StreamDelta, Usage
from tierwise.wire.anthropic import inbound as anthropic_wire
from tierwise.wire.anthropic.events import EventEncoder
from tierwise.wire.openai import inbound as openai_wire

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


async def _open(request: web.Request, stream: ChatStream) -> web.StreamResponse:
    found = record_headers(stream.record)
    found.pop("x-tierwise-cost-usd", None)
    response = web.StreamResponse(headers={**SSE_HEADERS, **found})
    await response.prepare(request)
    return response


async def _open_stream(
    request: web.Request, gateway: Gateway, chat: ChatRequest, rid: str, caller: Caller
) -> ChatStream:
    return await gateway.stream(
        chat,
        request_id=rid,
        origin=caller.origin(request[CLIENT_RID]),
    )


def _data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\n" + _data(payload)


def _last_usage(stream: ChatStream) -> Usage | None:
    """The usage of the last attempt; a stream replayed from the cache has no
    attempt, and its usage is the cached answer's."""
    attempts = stream.record.attempts
    return attempts[-1].usage if attempts else stream.response().usage


def _summary(record: RequestRecord) -> bytes:
    """An SSE comment (ignored by clients) with the final bill."""
    info = {
        "request_id": record.request_id,
        "model": record.final_deployment,
        "attempts": len(record.calls),
        "cost_usd": f"{record.cost.total_usd:f}",
        "status": record.status,
        "checked": record.checked,
    }
    return b": tierwise " + orjson.dumps(info) + b"\n\n"


@dataclass(frozen=True, slots=True)
class OpenAIChunks:
    """How an OpenAI-style stream writes: its id prefix, a delta's chunk (None: the
    delta carries nothing to send) and the usage chunk."""

    prefix: str
    chunk: Callable[[StreamDelta, str, str, int], Any | None]
    usage: Callable[[Usage, str, str, int], Any]


def _chat_chunk(delta: StreamDelta, cid: str, model: str, created: int) -> Any | None:
    if delta.text or delta.role or delta.tool_calls or delta.finish_reason:
        return openai_wire.encode_chunk(delta, cid, model, created)
    return None


CHAT_CHUNKS = OpenAIChunks("chatcmpl-", _chat_chunk, openai_wire.encode_usage_chunk)


async def stream_openai(
    request: web.Request,
    gateway: Gateway,
    chat: ChatRequest,
    rid: str,
    include_usage: bool,
    caller: Caller,
    chunks: OpenAIChunks = CHAT_CHUNKS,
) -> web.StreamResponse:
    """Chunks, a usage chunk when asked for, `[DONE]`; an upstream failure after the
    first byte is an OpenAI error object in the stream."""
    stream = await _open_stream(request, gateway, chat, rid, caller)
    model, created, cid = stream.deployment.model, int(time.time()), chunks.prefix + rid
    async with stream:
        response = await _open(request, stream)
        try:
            async for delta in stream:
                chunk = chunks.chunk(delta, cid, model, created)
                if chunk is not None:
                    await response.write(_data(chunk))
        except StreamInterruptedError as exc:
            error = openai_wire.encode_error(502, f"upstream stream failed: {exc}")
            await response.write(_data(error) + _summary(exc.record))
            return response
        usage = stream.response().usage or _last_usage(stream)
        if include_usage and usage is not None:
            await response.write(_data(chunks.usage(usage, cid, model, created)))
        await response.write(_summary(stream.record) + b"data: [DONE]\n\n")
    return response


async def stream_anthropic(
    request: web.Request, gateway: Gateway, chat: ChatRequest, rid: str, caller: Caller
) -> web.StreamResponse:
    stream = await _open_stream(request, gateway, chat, rid, caller)
    encoder = EventEncoder(f"msg_{rid}", stream.deployment.model)
    async with stream:
        response = await _open(request, stream)
        await response.write(b"".join(_event(n, p) for n, p in encoder.start()))
        try:
            async for delta in stream:
                events = encoder.feed(delta)
                if events:
                    await response.write(b"".join(_event(n, p) for n, p in events))
        except StreamInterruptedError as exc:
            error = anthropic_wire.encode_error(502, f"upstream stream failed: {exc}")
            await response.write(_event("error", error) + _summary(exc.record))
            return response
        usage = _last_usage(stream)
        if usage is not None:
            encoder.usage = usage
        finish = b"".join(_event(n, p) for n, p in encoder.finish())
        await response.write(finish + _summary(stream.record))
    return response
