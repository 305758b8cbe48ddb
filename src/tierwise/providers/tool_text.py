"""Tool calls a small local model writes as text.

llama.cpp renders the model's own chat template (tools included) and parses the
tool calls that template asks for (`<tool_call>{...}</tool_call>` for Qwen). Small
models often answer with the same JSON object without the tags: bare, in a
```` ```json ```` fence or in other tags. `calls_in_text` reads such an answer as tool
calls when the whole answer is one call (or a list of calls) of offered tools.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from tierwise.types import JSON, ToolCall

_FENCE = re.compile(r"^```[A-Za-z]*\s*(.*?)\s*```$", re.S)
_TAGS = re.compile(r"^<([A-Za-z_]+)>\s*(.*?)\s*</\1>$", re.S)
OPENERS = "{[<`"
"""How an answer that may be a tool call starts (after white space)."""


def offered_names(tools: Iterable[JSON] | None) -> set[str]:
    names = set()
    for tool in tools or ():
        function = tool.get("function", tool)
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def could_be_call(text: str) -> bool:
    """False once the text so far cannot be a tool call written as text."""
    start = text.lstrip()
    return not start or start[0] in OPENERS


def _unwrap(text: str) -> str:
    text = text.strip()
    for pattern in (_FENCE, _TAGS, _FENCE):
        found = pattern.match(text)
        if found:
            text = found.group(found.lastindex or 1).strip()
    return text


def _call(value: Any, names: set[str], make_id: Callable[[], str]) -> ToolCall | None:
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(make_id(), str(value["name"]), orjson.dumps(arguments).decode())


def calls_in_text(text: str, names: set[str], make_id: Callable[[], str]) -> list[ToolCall] | None:
    """The tool calls `text` consists of, or None when it is not only tool calls."""
    body = _unwrap(text)
    if not body or body[0] not in "{[":
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    values = value if isinstance(value, list) else [value]
    calls = [_call(v, names, make_id) for v in values]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]
