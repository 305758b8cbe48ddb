"""Tool calls in the fake upstream: the pairing rules both real APIs enforce on a
conversation, and the tool-call parts of answers and streams in both formats."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ARG_PIECE = 4
"""Characters of arguments per streamed delta."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool call the fake model makes: a name and its arguments as JSON text."""

    name: str
    arguments: str


def call_id(prefix: str, ident: str, i: int) -> str:
    return f"{prefix}_{ident}" if i == 0 else f"{prefix}_{ident}_{i}"


def pairing_problem(anthropic: bool, body: dict[str, Any]) -> str | None:
    """What a real upstream would reject in the conversation's tool calls, or None."""
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    if anthropic:
        return _anthropic_problem(messages)
    return _openai_problem(messages)


def _openai_problem(messages: list[dict[str, Any]]) -> str | None:
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") == "tool":
            call = message.get("tool_call_id")
            if call not in pending:
                return f"messages[{i}]: no pending tool call has tool_call_id {call!r}"
            pending.discard(call)
            continue
        if pending:
            return f"messages[{i}]: tool calls {sorted(pending)} have no tool message"
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                return f"messages[{i}].tool_calls: arguments must be a JSON string"
            pending.add(str(call.get("id")))
    return f"tool calls {sorted(pending)} have no tool message" if pending else None


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    return [b for b in blocks if isinstance(b, dict) and b.get("type") == kind]


def _anthropic_problem(messages: list[dict[str, Any]]) -> str | None:
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") == "user":
            problem = _results_problem(i, message, pending)
            if problem:
                return problem
            pending = set()
            continue
        for block in _blocks(message, "tool_use"):
            if not isinstance(block.get("input"), dict):
                return f"messages.{i}: tool_use.input must be an object"
            pending.add(str(block.get("id")))
    return f"tool_use ids {sorted(pending)} have no tool_result" if pending else None


def _results_problem(i: int, message: dict[str, Any], pending: set[str]) -> str | None:
    results = _blocks(message, "tool_result")
    ids = {str(b.get("tool_use_id")) for b in results}
    if ids != pending:
        return (
            f"messages.{i}: tool_result ids {sorted(ids)} do not match the tool_use ids "
            f"{sorted(pending)} of the turn before"
        )
    content = message.get("content")
    if results and isinstance(content, list) and content[: len(results)] != results:
        return f"messages.{i}: tool_result blocks must come first"
    if any(not isinstance(b.get("is_error", False), bool) for b in results):
        return f"messages.{i}: tool_result.is_error must be a boolean"
    return None


def openai_calls(ident: str, specs: Iterable[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "id": call_id("call", ident, i),
            "type": "function",
            "function": {"name": s.name, "arguments": s.arguments},
        }
        for i, s in enumerate(specs)
    ]


def anthropic_blocks(ident: str, specs: Iterable[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_use",
            "id": call_id("toolu", ident, i),
            "name": s.name,
            "input": json.loads(s.arguments),
        }
        for i, s in enumerate(specs)
    ]


def _pieces(text: str) -> list[str]:
    return [text[i : i + ARG_PIECE] for i in range(0, len(text), ARG_PIECE)]


def openai_deltas(ident: str, specs: list[ToolSpec]) -> list[dict[str, Any]]:
    """Chunk deltas: each call opens with its id and name, then its arguments in pieces."""
    deltas: list[dict[str, Any]] = []
    for i, (call, spec) in enumerate(zip(openai_calls(ident, specs), specs, strict=True)):
        call["function"] = {"name": spec.name, "arguments": ""}
        deltas.append({"tool_calls": [{"index": i, **call}]})
        deltas += [
            {"tool_calls": [{"index": i, "function": {"arguments": p}}]}
            for p in _pieces(spec.arguments)
        ]
    return deltas


def anthropic_events(
    ident: str, specs: list[ToolSpec], first: int
) -> list[tuple[str, dict[str, Any]]]:
    """Block events of the tool calls, numbered from content block `first`."""
    events: list[tuple[str, dict[str, Any]]] = []
    for i, block in enumerate(anthropic_blocks(ident, specs), start=first):
        start = {"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}}
        events.append(("content_block_start", start))
        for piece in _pieces(specs[i - first].arguments):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    return events


@dataclass(frozen=True, slots=True)
class ScriptedTools:
    """Tool calls (and text said before them) a model answers any tools request with."""

    calls: tuple[ToolSpec, ...]
    text: str = ""
