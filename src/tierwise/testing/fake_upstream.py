"""Fake OpenAI- and Anthropic-compatible LLM upstream with fault injection.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/messages``, ``GET /v1/models``,
``POST /v1/embeddings`` (`_fake_embed`), and the Azure OpenAI, Gemini and Bedrock
Converse paths (`_fake_dialects`).
Faults come, in order of precedence, from `add_fault`, the ``x-fake-fault`` header,
``[[fault=NAME ...]]`` directives in the last user message, and `set_failure_rate`.
`script` gives a model a fixed reply (and usage) to one prompt, e.g. to replay
recorded answers; `respond` lets a function reply for a model from the whole request
(e.g. a judge that reads recorded scores); `script_tools` gives it tool calls (several:
parallel calls) to answer any request that offers tools with. A conversation whose
tool results do not pair with the tool calls before them is rejected with a 400, as the
real APIs do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import signal
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from tierwise.testing import _fake_dialects as dialects
from tierwise.testing import _fake_embed as embed
from tierwise.testing import _fake_errors as errors
from tierwise.testing import _fake_tools as tools
from tierwise.testing import _fake_wire as wire
from tierwise.testing._fake_azure import AZURE
from tierwise.testing._fake_bedrock import BEDROCK
from tierwise.testing._fake_gemini import GEMINI
from tierwise.testing._fake_wire import ANTHROPIC, FAULTS, OPENAI, Call, Scripted, text_of

__all__ = ["FAULTS", "FakeUpstream", "ReceivedRequest", "Scripted", "text_of"]

Responder = Callable[[Sequence[Any]], Scripted | None]
_JSON = "application/json"
_ROUTES = {
    ("POST", "/v1/chat/completions"): OPENAI,
    ("POST", "/v1/messages"): ANTHROPIC,
}
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_DIALECTS: list[dialects.Dialect] = [AZURE, GEMINI, BEDROCK]
_BY_WIRE = {d.name: d for d in _DIALECTS}
_KNOWN_FAULTS = FAULTS | dialects.EXTRA_FAULTS


@dataclass(slots=True)
class ReceivedRequest:
    """One request as received (header names lower-cased)."""

    path: str
    model: str | None
    fault: str | None
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    raw_path: str = ""
    raw_body: bytes = b""


@dataclass(slots=True)
class _Fault:
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def num(self, key: str, default: float) -> float:
        try:
            return float(self.params.get(key, default))
        except (TypeError, ValueError):
            return default


@dataclass(slots=True)
class _Queued:
    fault: _Fault
    model: str | None
    times: int


def _check_fault(name: str) -> None:
    if name not in _KNOWN_FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {sorted(_KNOWN_FAULTS)}")


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=wire.dumps(payload), content_type=_JSON, headers=headers
    )


class FakeUpstream:
    """A fake LLM upstream listening on a real socket."""

    def __init__(
        self,
        *,
        seed: int = 0,
        retry_after_s: float = 1.0,
        hang_s: float = 3600.0,
        latency_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("fake-small", "fake-large"),
    ) -> None:
        self.seed = seed
        self.retry_after_s = retry_after_s
        self.hang_s = hang_s
        self.latency_s = latency_s
        self.requests: list[ReceivedRequest] = []
        self._host, self._port = host, port
        self._models = {m: 1_700_000_000 for m in models}
        self._rng = random.Random(seed)
        self._queue: list[_Queued] = []
        self._rates: dict[str | None, tuple[float, str]] = {}
        self._scripts: dict[tuple[str, str], wire.Scripted] = {}
        self._tool_scripts: dict[str, tools.ScriptedTools] = {}
        self._responders: dict[str, Responder] = {}
        self._ids = itertools.count(1)
        self._runner: web.ServerRunner | None = None
        self._closing = asyncio.Event()
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._bound_port is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """Root URL without ``/v1``."""
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        """Start listening."""
        if self._runner is not None:
            return
        self._closing = asyncio.Event()
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()
        await runner.cleanup()
        self._bound_port = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def add_fault(
        self, fault: str, *, model: str | None = None, times: int = 1, **params: Any
    ) -> None:
        """Give the next `times` requests for `model` (None: any) this fault."""
        _check_fault(fault)
        if times > 0:
            self._queue.append(_Queued(_Fault(fault, params), model, times))

    def set_failure_rate(self, model: str | None, rate: float, fault: str = "500") -> None:
        """Fail a `rate` share of requests for `model` (None: any) at random."""
        _check_fault(fault)
        if rate <= 0:
            self._rates.pop(model, None)
        else:
            self._rates[model] = (rate, fault)

    def script(
        self,
        model: str,
        prompt: str,
        reply: str,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> None:
        """Answer `prompt` (the whole last user message) for `model` with `reply`,
        reporting this usage (None: counted as for any answer). Faults still apply;
        `clear` keeps scripts."""
        self._scripts[(model, prompt)] = wire.Scripted(reply, prompt_tokens, completion_tokens)

    def script_tools(
        self, model: str, calls: Sequence[tuple[str, Mapping[str, Any]]], *, text: str = ""
    ) -> None:
        """Answer every request for `model` that offers tools (and does not rule them
        out) with these `(name, arguments)` calls, in order, after `text`."""
        specs = tuple(tools.ToolSpec(name, wire.dumps(dict(args)).decode()) for name, args in calls)
        self._tool_scripts[model] = tools.ScriptedTools(specs, text)

    def respond(self, model: str, responder: Responder) -> None:
        """Let `responder` reply for `model`: it gets the request's parsed messages
        (in the wire format sent) and returns the reply, or None to answer as usual.
        Scripts for the exact prompt come first; faults still apply."""
        self._responders[model] = responder

    def _build(self, call: Call, fault: str | None) -> wire.Answer:
        scripted = self._scripts.get((call.model, call.prompt))
        responder = self._responders.get(call.model)
        if scripted is None and responder is not None:
            scripted = responder(call.body.get("messages") or [])
        return wire.build_answer(call, fault, scripted, self._tool_scripts.get(call.model))

    def clear(self) -> None:
        """Drop queued faults, failure rates and recorded requests; reseed."""
        self._queue.clear()
        self._rates.clear()
        self.requests.clear()
        self._rng = random.Random(self.seed)

    def count(self, model: str | None = None) -> int:
        """Number of requests received (for `model`, when given)."""
        if model is None:
            return len(self.requests)
        return sum(1 for r in self.requests if r.model == model)

    def _pick_fault(self, call: Call, headers: Mapping[str, str]) -> _Fault | str | None:
        for i, q in enumerate(self._queue):
            if q.model is None or q.model == call.model:
                q.times -= 1
                if q.times <= 0:
                    del self._queue[i]
                return q.fault
        header = headers.get("x-fake-fault")
        if header:
            d = wire.parse_directive(header)
            if d is not None and d.model in (None, call.model):
                return self._directive_fault(d.name, d.params)
        d = call.fault_directive()
        if d is not None and d.value is not None:
            return self._directive_fault(d.value, d.params)
        rate = self._rates.get(call.model) or self._rates.get(None)
        if rate is not None and self._rng.random() < rate[0]:
            return _Fault(rate[1])
        return None

    @staticmethod
    def _directive_fault(name: str, params: Mapping[str, str]) -> _Fault | str:
        return _Fault(name, params) if name in _KNOWN_FAULTS else name

    def _record(
        self, request: web.BaseRequest, call: Call | None, fault: str | None, raw: bytes = b""
    ) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        model, stream = (None, False) if call is None else (call.model, call.stream)
        body = {} if call is None else dialects.raw_body(call)
        query = dict(request.query.items())
        self.requests.append(
            ReceivedRequest(
                request.path, model, fault, stream, body, headers, query, request.raw_path, raw
            )
        )

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        kind = _ROUTES.get((request.method, request.path))
        if kind is not None:
            return await self._chat(request, kind)
        if (request.method, request.path) == ("POST", "/v1/embeddings"):
            return await self._embeddings(request)
        routed = dialects.route(_DIALECTS, request.method, request.path)
        if routed is not None:
            return await self._chat(request, routed.dialect.name, routed)
        self._record(request, None, None)
        if request.method == "GET" and request.path == "/v1/models":
            return _json(200, wire.models_payload(self._models))
        msg = f"Unknown request URL: {request.method} {request.path}"
        return _json(404, errors.openai_error(msg, "invalid_request_error", None, "unknown_url"))

    async def _chat(
        self, request: web.BaseRequest, kind: str, routed: dialects.Routed | None = None
    ) -> web.StreamResponse:
        raw = await request.read()
        refused = None if routed is None else routed.dialect.refuse(request)
        if refused is not None:
            self._record(request, None, None, raw)
            return refused
        try:
            body = wire.loads(raw)
            if routed is None:
                call = wire.parse_call(kind, body)
            else:
                call = routed.dialect.parse(routed.model, routed.stream, body)
        except ValueError as exc:
            self._record(request, None, None, raw)
            return self._bad_request(kind, str(exc))
        problem = None if routed else tools.pairing_problem(kind == ANTHROPIC, call.body)
        if problem is not None:
            self._record(request, call, None, raw)
            return self._bad_request(kind, f"fake upstream: {problem}")
        fault = self._pick_fault(call, request.headers)
        if isinstance(fault, str):
            self._record(request, call, None, raw)
            return self._bad_request(kind, f"fake upstream: unknown fault {fault!r}")
        self._record(request, call, None if fault is None else fault.name, raw)
        latency = call.option("latency")
        delay = self.latency_s if latency is None else wire.as_float(latency, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is None and not call.stream:
            return self._answer_response(call, self._build(call, None))
        return await self._faulted(request, call, fault or _Fault(""))

    async def _embeddings(self, request: web.BaseRequest) -> web.StreamResponse:
        """``POST /v1/embeddings`` (`_fake_embed`), with the chat endpoints' error
        faults, `reset`, `hang` and `invalid_json`; other faults answer normally."""
        try:
            call = embed.parse_embedding_call(wire.loads(await request.read()))
        except ValueError as exc:
            self._record(request, None, None)
            return self._bad_request(OPENAI, str(exc))
        fault = self._pick_fault(call, request.headers)
        if isinstance(fault, str):
            self._record(request, call, None)
            return self._bad_request(OPENAI, f"fake upstream: unknown fault {fault!r}")
        self._record(request, call, None if fault is None else fault.name)
        name = fault.name if fault is not None else ""
        if fault is not None and errors.is_error_fault(name):
            return self._error_response(call, fault)
        if name == "reset":
            return await self._abort(request, rst=True)
        if name == "hang":
            return await self._hang(request)
        if name == "invalid_json":
            return web.Response(body=wire.INVALID_JSON_BODY, content_type=_JSON)
        return _json(200, embed.embedding_list(call, f"fake{next(self._ids):012d}"))

    @staticmethod
    def _bad_request(kind: str, message: str) -> web.Response:
        if kind in _BY_WIRE:
            return _BY_WIRE[kind].bad_request(message)
        if kind == ANTHROPIC:
            return _json(400, errors.anthropic_error("invalid_request_error", message))
        return _json(400, errors.openai_error(message, "invalid_request_error"))

    def _answer_body(self, call: Call, answer: wire.Answer, fault: str = "") -> bytes:
        ident = f"fake{next(self._ids):012d}"
        if call.wire in _BY_WIRE:
            return _BY_WIRE[call.wire].answer(call, answer, ident, fault)
        if call.wire == ANTHROPIC:
            return wire.dumps(wire.anthropic_message(call, answer, ident))
        return wire.dumps(wire.openai_completion(call, answer, ident, int(time.time())))

    def _answer_response(self, call: Call, answer: wire.Answer, fault: str = "") -> web.Response:
        return web.Response(body=self._answer_body(call, answer, fault), content_type=_JSON)

    def _error_response(self, call: Call, fault: _Fault) -> web.Response:
        retry = _seconds(fault.num("retry_after", self.retry_after_s))
        if call.wire in _BY_WIRE:
            return _BY_WIRE[call.wire].error(call, fault.name, retry)
        status, payload = errors.error_payload(call.wire, fault.name, call.model, retry)
        headers = {"Retry-After": retry} if fault.name == "429" else None
        return _json(status, payload, headers)

    async def _faulted(
        self, request: web.BaseRequest, call: Call, fault: _Fault
    ) -> web.StreamResponse:
        name = fault.name
        if errors.is_error_fault(name):
            return self._error_response(call, fault)
        if name == "reset":
            return await self._abort(request, rst=True)
        if name == "hang":
            return await self._hang(request)
        if call.stream:
            return await self._stream(request, call, fault)
        if name == "slow_first_token":
            await asyncio.sleep(fault.num("delay", 1.0))
        if name == "invalid_json":
            return web.Response(body=wire.INVALID_JSON_BODY, content_type=_JSON)
        answer = self._build(call, name)
        if name == "cut":
            return await self._cut_body(request, self._answer_body(call, answer))
        return self._answer_response(call, answer, name)

    async def _abort(self, request: web.BaseRequest, *, rst: bool) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if rst and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        await asyncio.sleep(60)
        raise ConnectionResetError("fake upstream aborted the connection")

    async def _hang(self, request: web.BaseRequest) -> web.StreamResponse:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.hang_s)
        return await self._abort(request, rst=False)

    async def _cut_body(self, request: web.BaseRequest, body: bytes) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": _JSON})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        return await self._abort(request, rst=False)

    def _plan(self, call: Call, answer: wire.Answer, fault: str) -> wire.StreamPlan:
        ident = f"fake{next(self._ids):012d}"
        if call.wire in _BY_WIRE:
            return _BY_WIRE[call.wire].stream(call, answer, ident, fault)
        if call.wire == ANTHROPIC:
            return wire.anthropic_stream(call, answer, ident)
        return wire.openai_stream(call, answer, ident, int(time.time()))

    async def _stream(
        self, request: web.BaseRequest, call: Call, fault: _Fault
    ) -> web.StreamResponse:
        plan = self._plan(call, self._build(call, fault.name or None), fault.name)
        dialect = _BY_WIRE.get(call.wire)
        resp = web.StreamResponse(
            headers=_SSE_HEADERS if dialect is None else dialect.stream_headers
        )
        await resp.prepare(request)
        if fault.name == "slow_first_token":
            await asyncio.sleep(fault.num("delay", 1.0))
        if fault.name == "invalid_json":
            frame = (
                wire.invalid_json_frame(call.wire) if dialect is None else dialect.invalid_frame()
            )
            plan.content = [frame]
        if fault.name == "cut":
            for frame in [*plan.head, *plan.content[: int(fault.num("after", 2))]]:
                await resp.write(frame)
            return await self._abort(request, rst=False)
        for frame in plan.frames():
            await resp.write(frame)
        await resp.write_eof()
        return resp


async def _serve(args: argparse.Namespace) -> None:
    upstream = FakeUpstream(seed=args.seed, latency_s=args.latency, host=args.host, port=args.port)
    await upstream.start()
    print(f"listening on {upstream.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await upstream.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake upstream as a process until killed."""
    parser = argparse.ArgumentParser(prog="python -m tierwise.testing.fake_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
