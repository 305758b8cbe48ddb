"""Request parsing, directives and OpenAI/Anthropic payloads of the fake upstream."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tierwise.testing._fake_tools import (
    ScriptedTools,
    ToolSpec,
    anthropic_blocks,
    anthropic_events,
    openai_calls,
    openai_deltas,
)

OPENAI = "openai"
ANTHROPIC = "anthropic"

FAULTS = frozenset(
    {
        "500", "503", "529", "429", "reset", "hang", "slow_first_token", "cut",
        "context_length", "content_policy", "auth", "bad_request", "empty", "punt",
        "invalid_json", "not_json_content",
    }
)  # fmt: skip
PUNT_TEXT = "I don't know."
NOT_JSON_TEXT = "Sure! here is {broken"
INVALID_JSON_BODY = b'<html><body>502 Bad Gateway</body></html> {"id": oops'
TOOL_ARGS = '{"x": 1}'

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _json_dumps(obj: Any) -> bytes:
    return _encoder.encode(obj).encode()


_dumps: Callable[[Any], bytes] = _json_dumps
loads: Callable[[bytes], Any] = json.loads
try:
    _orjson = importlib.import_module("orjson")
    _dumps, loads = _orjson.dumps, _orjson.loads
except ImportError:  # pragma: no cover
    pass


def dumps(obj: Any) -> bytes:
    """Serialize to compact JSON bytes."""
    return _dumps(obj)


_DIRECTIVE_RE = re.compile(r"\[\[(.*?)\]\]", re.S)
_PAIR_RE = re.compile(r'([\w.-]+)(?:=("[^"]*"|\S*))?')
_WORD_RE = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class Directive:
    """One `[[name=value key=value ...]]` directive."""

    name: str
    value: str | None
    params: dict[str, str]
    model: str | None


def parse_pairs(text: str) -> list[tuple[str, str | None]]:
    """Split `a=1 b="x y" c` into key/value pairs (bare keys get None)."""
    pairs: list[tuple[str, str | None]] = []
    for m in _PAIR_RE.finditer(text):
        raw = m.group(2)
        if raw is not None and len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        pairs.append((m.group(1), raw))
    return pairs


def parse_directive(text: str) -> Directive | None:
    """Parse the inside of one directive."""
    pairs = parse_pairs(text)
    if not pairs:
        return None
    (name, value), rest = pairs[0], pairs[1:]
    params = {k: "" if v is None else v for k, v in rest}
    return Directive(name, value, params, params.pop("model", None))


def split_directives(text: str) -> tuple[str, list[Directive]]:
    """Return the text without directives and the directives found in it."""
    if "[[" not in text:
        return text, []
    found = [d for m in _DIRECTIVE_RE.finditer(text) if (d := parse_directive(m.group(1)))]
    return _DIRECTIVE_RE.sub(" ", text), found


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined by lines."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for part in content:
        if isinstance(part, dict):
            text = part.get("text")
            if isinstance(text, str):
                parts.append(text)
            elif "content" in part:
                parts.append(text_of(part["content"]))
    return "\n".join(parts)


@dataclass(slots=True)
class Call:
    """A parsed chat request."""

    wire: str
    model: str
    stream: bool
    body: dict[str, Any]
    echo: str
    prompt_tokens: int
    directives: list[Directive] = field(default_factory=list)
    after_tool: bool = False
    prompt: str = ""

    def option(self, name: str) -> str | None:
        """Value of the first non-fault directive key `name` for this model ('' if bare)."""
        for d in self.directives:
            if d.name == "fault" or (d.model is not None and d.model != self.model):
                continue
            if d.name == name:
                return "" if d.value is None else d.value
            if name in d.params:
                return d.params[name]
        return None

    def fault_directive(self) -> Directive | None:
        """The first fault directive that applies to this model."""
        for d in self.directives:
            if d.name == "fault" and d.value and d.model in (None, self.model):
                return d
        return None


def parse_call(wire: str, body: Any) -> Call:
    """Validate and parse a chat request body; raise ValueError when malformed."""
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise ValueError("'model' is required")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty array")
    chars, count, last = 0, len(messages), ""
    system = body.get("system")
    if system:
        sys_text = text_of(system)
        chars, count = len(sys_text), count + 1
    for msg in messages:
        if not isinstance(msg, dict):
            raise ValueError("each message must be an object")
        text = text_of(msg.get("content"))
        chars += len(text)
        if msg.get("role") == "user":
            last = text
    clean, directives = split_directives(last)
    echo = " ".join(clean[:400].split())[:40]
    stream = body.get("stream") is True
    after_tool = isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
    tokens = chars // 4 + count
    return Call(wire, model, stream, body, echo, tokens, directives, after_tool, last)


@dataclass(slots=True)
class Answer:
    """What the fake model says: text, and the tool calls it makes (if any)."""

    text: str
    completion_tokens: int
    calls: tuple[ToolSpec, ...] = ()
    logprob: float | None = None
    prompt_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Scripted:
    """A scripted reply, and the usage to report for it (None: counted as usual)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprob: float | None = None
    """The logprob of the reply's first token, sent when the request asks for logprobs."""


def _forced_tool(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        return None
    fn = choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
    return name if isinstance(name, str) else None


def tool_for(call: Call) -> str | None:
    """Name of the tool the fake model calls, or None for a text answer."""
    tools, choice = call.body.get("tools"), call.body.get("tool_choice")
    if not isinstance(tools, list) or not _offers_tools(call.body):
        return None
    forced = _forced_tool(choice)
    if forced:
        return forced
    wanted = None if call.after_tool else call.option("tool")
    if wanted:
        return wanted
    if wanted is None and choice != "required" and not _is_any(choice):
        return None
    first = tools[0] if isinstance(tools[0], dict) else {}
    fn = first.get("function")
    name = fn.get("name") if isinstance(fn, dict) else first.get("name")
    return name if isinstance(name, str) else "tool"


def _offers_tools(body: dict[str, Any]) -> bool:
    choice = body.get("tool_choice")
    ruled_out = choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none")
    return bool(body.get("tools")) and not ruled_out


def _is_any(choice: Any) -> bool:
    return isinstance(choice, dict) and choice.get("type") == "any"


def _json_mode(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format") or body.get("output_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def as_float(value: str | None, default: float) -> float:
    try:
        return default if value is None else float(value)
    except ValueError:
        return default


def build_answer(
    call: Call,
    fault: str | None,
    scripted: Scripted | None = None,
    tools: ScriptedTools | None = None,
) -> Answer:
    """Compute the answer for a request that is not an error fault; a `scripted` reply
    replaces the text (and usage) of a plain text answer, scripted `tools` answer a
    request that offers tools."""
    logprob = None
    if call.body.get("logprobs") is True:
        logprob = as_float(call.option("logprob"), -0.05)
    if fault == "empty":
        return Answer("", 1, logprob=logprob)
    if fault == "not_json_content":
        return Answer(NOT_JSON_TEXT, len(NOT_JSON_TEXT) // 4 + 1, logprob=logprob)
    if tools is not None and fault != "punt" and _offers_tools(call.body):
        size = len(tools.text) + sum(len(c.arguments) for c in tools.calls)
        return Answer(tools.text, size // 4 + 1, calls=tools.calls)
    tool = None if fault == "punt" else tool_for(call)
    if tool is not None:
        return Answer("", len(TOOL_ARGS) // 4 + 1, calls=(ToolSpec(tool, TOOL_ARGS),))
    if scripted is not None and fault != "punt":
        return _scripted_answer(scripted, logprob)
    text = call.option("reply")
    if fault == "punt":
        text = PUNT_TEXT
    elif text is None:
        text = f"Answer from {call.model}: {call.echo}"
    if _json_mode(call.body) and not _is_json_object(text):
        conf = as_float(call.option("confidence"), 0.9)
        text = dumps({"answer": text, "confidence": conf}).decode()
    return Answer(text, len(text) // 4 + 1, logprob=logprob)


def _scripted_answer(scripted: Scripted, logprob: float | None) -> Answer:
    if logprob is not None and scripted.logprob is not None:
        logprob = scripted.logprob
    text = scripted.text
    tokens = scripted.completion_tokens
    completion = len(text) // 4 + 1 if tokens is None else tokens
    return Answer(text, completion, logprob=logprob, prompt_tokens=scripted.prompt_tokens)


def _is_json_object(text: str) -> bool:
    """True for a `[[reply=...]]` that is already a JSON object (sent verbatim)."""
    if not text.startswith("{"):
        return False
    try:
        return isinstance(loads(text.encode()), dict)
    except ValueError:
        return False


def cached_tokens(call: Call) -> int:
    """Cached prompt tokens requested by `[[cached=N]]`."""
    return int(as_float(call.option("cached"), 0.0))


def cache_write_tokens(call: Call) -> int:
    """Prompt tokens written to the cache, requested by `[[cache_write=N]]`."""
    return int(as_float(call.option("cache_write"), 0.0))


def usage_enabled(call: Call) -> bool:
    """False when `[[usage=none]]` asks to omit usage."""
    return call.option("usage") != "none"


def _prompt_tokens(call: Call, answer: Answer) -> int:
    return call.prompt_tokens if answer.prompt_tokens is None else answer.prompt_tokens


def _openai_usage(call: Call, answer: Answer) -> dict[str, Any]:
    p, c = _prompt_tokens(call, answer), answer.completion_tokens
    details = {"cached_tokens": cached_tokens(call)}
    if cache_write_tokens(call):
        details["cache_write_tokens"] = cache_write_tokens(call)
    return {
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "prompt_tokens_details": details,
    }


def _anthropic_usage(call: Call, answer: Answer) -> dict[str, Any]:
    cached, written = cached_tokens(call), cache_write_tokens(call)
    return {
        "input_tokens": max(_prompt_tokens(call, answer) - cached - written, 0),
        "output_tokens": answer.completion_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def _logprobs(tokens: list[str], logprob: float) -> dict[str, Any]:
    items = [
        {"token": t, "logprob": logprob, "bytes": list(t.encode()), "top_logprobs": []}
        for t in tokens
    ]
    return {"content": items, "refusal": None}


def openai_completion(call: Call, answer: Answer, ident: str, created: int) -> dict[str, Any]:
    """A non-stream `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    finish = "stop"
    logprobs = None
    if answer.calls:
        message["content"] = answer.text or None
        message["tool_calls"] = openai_calls(ident, answer.calls)
        finish = "tool_calls"
    elif answer.logprob is not None:
        logprobs = _logprobs(_words(answer.text), answer.logprob)
    out: dict[str, Any] = {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": created,
        "model": call.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}
        ],
    }
    if usage_enabled(call):
        out["usage"] = _openai_usage(call, answer)
    return out


def anthropic_message(call: Call, answer: Answer, ident: str) -> dict[str, Any]:
    """A non-stream Anthropic `message` object."""
    text = [{"type": "text", "text": answer.text}] if answer.text or not answer.calls else []
    content = text + anthropic_blocks(ident, answer.calls)
    stop = "tool_use" if answer.calls else "end_turn"
    out: dict[str, Any] = {
        "id": f"msg_{ident}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
    }
    if usage_enabled(call):
        out["usage"] = _anthropic_usage(call, answer)
    return out


@dataclass(slots=True)
class StreamPlan:
    """SSE frames: head (before content), content chunks, tail."""

    head: list[bytes]
    content: list[bytes]
    tail: list[bytes]

    def frames(self) -> Iterator[bytes]:
        """All frames in order."""
        yield from self.head
        yield from self.content
        yield from self.tail


def _pieces(text: str, size: int) -> list[str]:
    words = _words(text)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def _data(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def openai_stream(call: Call, answer: Answer, ident: str, created: int) -> StreamPlan:
    """`chat.completion.chunk` frames for a streamed answer."""
    base = {"id": f"chatcmpl-{ident}", "object": "chat.completion.chunk", "created": created}
    base["model"] = call.model

    def chunk(delta: dict[str, Any], finish: str | None = None, lp: Any = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}
        return _data({**base, "choices": [choice]})

    deltas = openai_deltas(ident, list(answer.calls))
    opening: dict[str, Any] = {"role": "assistant", "content": None if deltas else ""}
    if deltas and not answer.text:
        opening.update(deltas.pop(0))
    head = [chunk(opening)]
    content = [_openai_text_chunk(chunk, p, answer.logprob) for p in _pieces(answer.text, 2)]
    content += [chunk(d) for d in deltas]
    finish = "tool_calls" if answer.calls else "stop"
    tail = [chunk({}, finish)]
    include = call.body.get("stream_options")
    if isinstance(include, dict) and include.get("include_usage") and usage_enabled(call):
        tail.append(_data({**base, "choices": [], "usage": _openai_usage(call, answer)}))
    tail.append(b"data: [DONE]\n\n")
    return StreamPlan(head, content, tail)


def _openai_text_chunk(chunk: Callable[..., bytes], piece: str, logprob: float | None) -> bytes:
    lp = None if logprob is None else _logprobs(_words(piece), logprob)
    return chunk({"content": piece}, None, lp)


def anthropic_stream(call: Call, answer: Answer, ident: str) -> StreamPlan:
    """Anthropic message stream events for a streamed answer."""
    message = anthropic_message(call, answer, ident)
    has_text = message["content"][0]["type"] == "text"
    message.update(content=[], stop_reason=None)
    if "usage" in message:
        message["usage"]["output_tokens"] = 1
    events = _text_events(answer.text) if has_text else []
    events += anthropic_events(ident, list(answer.calls), 1 if has_text else 0)
    head = [
        _event("message_start", {"type": "message_start", "message": message}),
        _event(*events[0]),
        _event("ping", {"type": "ping"}),
    ]
    content = [_event(*e) for e in events[1:-1]]
    stop = "tool_use" if answer.calls else "end_turn"
    delta: dict[str, Any] = {"type": "message_delta",
                             "delta": {"stop_reason": stop, "stop_sequence": None}}  # fmt: skip
    if usage_enabled(call):
        delta["usage"] = {"output_tokens": answer.completion_tokens}
    tail = [
        _event(*events[-1]),
        _event("message_delta", delta),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return StreamPlan(head, content, tail)


def _text_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    deltas = [
        ("content_block_delta",
         {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})
        for p in _pieces(text, 2)
    ]  # fmt: skip
    return [("content_block_start", start), *deltas,
            ("content_block_stop", {"type": "content_block_stop", "index": 0})]  # fmt: skip


def invalid_json_frame(wire: str) -> bytes:
    """An SSE frame whose data is not JSON."""
    if wire == ANTHROPIC:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", oops\n\n'
    return b'data: {"id": "chatcmpl-broken", oops not json\n\n'


def models_payload(models: Mapping[str, int]) -> dict[str, Any]:
    """Model list readable by both the OpenAI and the Anthropic clients."""
    data = [
        {"id": m, "object": "model", "type": "model", "created": t, "owned_by": "fake",
         "display_name": m, "created_at": "2024-01-01T00:00:00Z"}
        for m, t in models.items()
    ]  # fmt: skip
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return {"object": "list", "data": data, "has_more": False, "first_id": first, "last_id": last}
