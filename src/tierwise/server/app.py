"""The aiohttp application: routes, request ids, auth, errors in the client's format."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tierwise.errors import (
    AccessError,
    AdmissionError,
    AllAttemptsFailedError,
    RequestError,
    RouteNotFoundError,
    TierwiseError,
)
from tierwise.experiments.assign import SESSION_KEY
from tierwise.gateway import ChatResult, Gateway, new_request_id
from tierwise.observability.metrics import Metrics
from tierwise.record import RequestRecord
from tierwise.server import completions, embeddings, responses
from tierwise.server.admission import Caller, admit, caller_of
from tierwise.server.auth import ApiKey, KeyRing, check_metrics, check_model
from tierwise.server.dashboard import DashboardState, add_dashboard_routes
from tierwise.server.feedback import parse_feedback
from tierwise.server.headers import CLIENT_RID, client_request_id, id_headers, record_headers
from tierwise.server.openapi import add_openapi_route
from tierwise.server.streams import stream_anthropic, stream_openai
from tierwise.store.guard import StoreUnavailableError, guarded_store
from tierwise.store.writer import RecordWriter
from tierwise.types import ChatRequest
from tierwise.wire.anthropic import inbound as anthropic_wire
from tierwise.wire.openai import completions as completions_wire
from tierwise.wire.openai import inbound as openai_wire

log = logging.getLogger("tierwise.server")
SESSION_HEADER = "x-tierwise-session"
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
KEYS: web.AppKey[KeyRing] = web.AppKey("keys", KeyRing)
READY: web.AppKey[asyncio.Event] = web.AppKey("ready", asyncio.Event)
RID: web.RequestKey[str] = web.RequestKey("rid", str)
WRITER: web.AppKey[RecordWriter | None] = web.AppKey("writer", RecordWriter)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
WARM_UP: web.AppKey[asyncio.Task[None]] = web.AppKey("warm_up", asyncio.Task)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    gateway: Gateway, keys: KeyRing, *, max_body_bytes: int, writer: RecordWriter | None = None
) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[errors_middleware])
    app[GATEWAY], app[KEYS], app[READY] = gateway, keys, asyncio.Event()
    app[WRITER], app[METRICS] = writer, Metrics({k.name: k.team for k in keys.keys})
    gateway.sinks.append(app[METRICS].observe)
    if writer is not None:
        gateway.sinks.append(writer.submit)
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_post("/v1/embeddings", openai_embeddings)
    app.router.add_post("/v1/responses", openai_responses)
    app.router.add_post("/v1/completions", openai_completions)
    app[responses.STORED] = responses.StoredResponses()
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    add_dashboard_routes(app, DashboardState(keys, writer, lambda: app[GATEWAY].experiments))
    add_openapi_route(app)
    app.on_startup.append(_warm_up)
    app.on_cleanup.append(_close)
    return app


async def _warm_up(app: web.Application) -> None:
    writer = app[WRITER]
    if writer is not None:
        await writer.start()

    async def run() -> None:
        await app[GATEWAY].warm_up()
        app[READY].set()

    app[WARM_UP] = asyncio.get_running_loop().create_task(run())


async def _close(app: web.Application) -> None:
    app[WARM_UP].cancel()
    await app[GATEWAY].aclose()
    writer = app[WRITER]
    if writer is not None:
        await writer.close()


def is_anthropic(request: web.Request) -> bool:
    return request.path.startswith("/v1/messages")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes an error object in the wire format of the route."""
    rid = new_request_id()
    request[RID], request[CLIENT_RID] = rid, client_request_id(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        status, message = exc.status, exc.reason
        if status == 413:
            message = f"request body is larger than {request.app._client_max_size} bytes"
        response = error_response(request, status, message, rid)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except TierwiseError as exc:
        return tierwise_error_response(request, exc, rid)
    except Exception:
        log.exception("unhandled error in request %s", rid)
        return error_response(request, 500, f"internal error (request id {rid})", rid)


def tierwise_error_response(request: web.Request, exc: TierwiseError, rid: str) -> web.Response:
    if isinstance(exc, RequestError):
        return error_response(request, exc.status, exc.message, rid, param=exc.param)
    if isinstance(exc, AccessError):
        return error_response(request, exc.status, exc.message, rid)
    if isinstance(exc, AdmissionError):
        code = "rate_limited" if exc.status == 429 else None
        response = error_response(request, exc.status, exc.message, rid, code=code)
        if exc.retry_after_s is not None:
            response.headers["retry-after"] = retry_after(exc.retry_after_s)
        return response
    if isinstance(exc, RouteNotFoundError):
        return error_response(request, 404, str(exc), rid, param="model", code="model_not_found")
    if isinstance(exc, AllAttemptsFailedError):
        attempts = [_attempt_summary(a) for a in exc.record.attempts]
        response = error_response(
            request, exc.status, exc.message, rid, code=exc.code, attempts=attempts
        )
        response.headers.update(record_headers(exc.record))
        if exc.retry_after_s is not None:
            response.headers["retry-after"] = retry_after(exc.retry_after_s)
        return response
    return error_response(request, 500, str(exc), rid)


def retry_after(seconds: float) -> str:
    """Whole seconds, rounded up and at least 1, as HTTP's Retry-After wants."""
    return str(max(1, math.ceil(seconds)))


def _attempt_summary(attempt: Any) -> dict[str, Any]:
    return {
        "deployment": attempt.deployment,
        "tier": attempt.tier,
        "called": attempt.called,
        "outcome": attempt.outcome,
        "reason": attempt.trigger,
        "detail": attempt.detail,
        "status": attempt.status,
    }


def error_response(
    request: web.Request,
    status: int,
    message: str,
    rid: str,
    *,
    param: str | None = None,
    code: str | None = None,
    attempts: list[dict[str, Any]] | None = None,
) -> web.Response:
    if is_anthropic(request):
        body = anthropic_wire.encode_error(status, message)
        if attempts is not None:
            body["error"]["attempts"] = attempts
    else:
        extra = {"attempts": attempts} if attempts is not None else None
        body = openai_wire.encode_error(status, message, param=param, code=code, extra=extra)
    return json_response(body, status, id_headers(rid, request.get(CLIENT_RID)))


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None


def with_session(request: web.Request, chat: ChatRequest) -> ChatRequest:
    """The `x-tierwise-session` header as `metadata.session_id` (experiment units)."""
    session = request.headers.get(SESSION_HEADER)
    if not session or chat.metadata.get(SESSION_KEY):
        return chat
    return chat.with_changes(metadata={**chat.metadata, SESSION_KEY: session[:256]})


async def authorize(request: web.Request, key: ApiKey | None, chat: ChatRequest) -> Caller:
    """The key may use the model, the model names a route, tier or deployment,
    and the caller's rate limits have room."""
    check_model(key, chat.model)
    gateway = request.app[GATEWAY]
    gateway.targets.get(chat.model)
    caller = caller_of(key, chat)
    await admit(gateway.state.limiter, caller, chat)
    return caller


async def openai_chat(request: web.Request) -> web.StreamResponse:
    key = request.app[KEYS].authenticate(request.headers)
    chat, stream, include_usage = openai_wire.decode_request(await read_body(request))
    chat = with_session(request, chat)
    caller = await authorize(request, key, chat)
    gateway, rid = request.app[GATEWAY], request[RID]
    if stream:
        return await stream_openai(request, gateway, chat, rid, include_usage, caller)
    result = await _answer(request, chat, caller)
    model = _served_model(gateway, result.record)
    body = openai_wire.encode_response(result.response, f"chatcmpl-{rid}", model, int(time.time()))
    return json_response(body, headers=record_headers(result.record))


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    key = request.app[KEYS].authenticate(request.headers)
    chat, stream = anthropic_wire.decode_request(await read_body(request))
    chat = with_session(request, chat)
    caller = await authorize(request, key, chat)
    gateway, rid = request.app[GATEWAY], request[RID]
    if stream:
        return await stream_anthropic(request, gateway, chat, rid, caller)
    result = await _answer(request, chat, caller)
    model = _served_model(gateway, result.record)
    body = anthropic_wire.encode_response(result.response, f"msg_{rid}", model)
    return json_response(body, headers=record_headers(result.record))


async def openai_embeddings(request: web.Request) -> web.StreamResponse:
    key = request.app[KEYS].authenticate(request.headers)
    body = await read_body(request)
    return await embeddings.answer(request, request.app[GATEWAY], key, request[RID], body)


async def openai_responses(request: web.Request) -> web.StreamResponse:
    key = request.app[KEYS].authenticate(request.headers)
    body = await read_body(request)
    return await responses.answer(request, request.app[GATEWAY], key, request[RID], body)


async def openai_completions(request: web.Request) -> web.StreamResponse:
    """The legacy Completions API: its prompt as one user message, answered as chat."""
    key = request.app[KEYS].authenticate(request.headers)
    call = completions_wire.decode_request(await read_body(request))
    chat = with_session(request, call.chat)
    caller = await authorize(request, key, chat)
    gateway, rid = request.app[GATEWAY], request[RID]
    if call.stream:
        return await stream_openai(
            request, gateway, chat, rid, call.include_usage, caller, completions.CHUNKS
        )
    result = await _answer(request, chat, caller)
    body = completions.encode(result, rid, _served_model(gateway, result.record))
    return json_response(body, headers=record_headers(result.record))


async def _answer(request: web.Request, chat: ChatRequest, caller: Caller) -> ChatResult:
    return await request.app[GATEWAY].chat(
        chat,
        request_id=request[RID],
        origin=caller.origin(request[CLIENT_RID]),
    )


def _served_model(gateway: Gateway, record: RequestRecord) -> str:
    deployment = gateway.deployments.get(record.final_deployment or "")
    return deployment.model if deployment else record.route


async def list_models(request: web.Request) -> web.Response:
    request.app[KEYS].authenticate(request.headers)
    names = request.app[GATEWAY].targets.names()
    if "anthropic-version" in request.headers:
        data: list[dict[str, Any]] = [
            {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
            for n in names
        ]
        return json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        )
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "tierwise"} for n in names]
    return json_response({"object": "list", "data": data})


async def feedback(request: web.Request) -> web.Response:
    """Store a user's score for a request, named by the gateway's id or by the client's
    `x-request-id` (then its newest request); 404 when neither is known. Records of
    answers already sent are written first, so a score right after its answer is kept.
    The score counts in `/metrics` under the request's route and final tier."""
    key = request.app[KEYS].authenticate(request.headers)
    item = parse_feedback(await read_body(request), key.name if key else None)
    store = guarded_store(request.app[WRITER], "feedback")
    if store.writer.pending and not await store.writer.flush():
        raise StoreUnavailableError("feedback")
    stored = await store.add_feedback(item)
    if stored is None:
        raise RequestError(
            f"unknown request id {item.request_id!r}", param="request_id", status=404
        )
    scored = await store.request_detail(stored)
    if scored is not None:
        request.app[METRICS].observe_feedback(scored["route"], scored["final_tier"], item.score)
    return json_response({"id": item.feedback_id, "request_id": stored, "score": item.score})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of every team's series: behind the API keys without a
    team and the admin keys (a team's key gets 403)."""
    check_metrics(request.app[KEYS], request.headers)
    gateway = request.app[GATEWAY]
    state = gateway.state
    shared: list[tuple[str, object]] = [
        ("health", state.health),
        ("budget", state.budget),
        ("rate_limit", state.limiter),
    ]
    if gateway.cache is not None:
        shared.append(("response_cache", gateway.cache.store))
    body = await request.app[METRICS].render(
        gateway.health, gateway.deployments, gateway.executor.clock.now(), shared
    )
    return web.Response(
        body=body,
        content_type="text/plain",
        charset="utf-8",
        headers={"x-prometheus-format": "0.0.4"},
    )


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    if request.app[READY].is_set():
        return json_response({"status": "ready"})
    return json_response({"status": "starting"}, status=503)
