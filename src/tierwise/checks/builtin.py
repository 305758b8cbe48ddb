"""The built-in quality checks."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tierwise.checks.base import AnswerView
from tierwise.record import CheckResult

DEFAULT_PUNTS = (
    "i don't know",
    "i do not know",
    "i cannot",
    "i can't help",
    "i am unable to",
    "i'm unable to",
    "i'm not sure",
)
DEFAULT_REFUSALS = (
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i can't assist",
    "i cannot assist",
    "i won't be able to help",
    "as an ai language model, i",
)


def _normalize(text: str) -> str:
    return text.replace("\u2019", "'").lower()


def _has_tool_calls(answer: AnswerView) -> bool:
    return bool(answer.response.tool_calls())


@dataclass(frozen=True, slots=True)
class EmptyCheck:
    """Fails an answer that is blank (and carries no tool call)."""

    name: str = "empty"

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        blank = answer.complete and not answer.text.strip() and not _has_tool_calls(answer)
        return CheckResult(self.name, not blank, "answer is blank" if blank else "")


@dataclass(frozen=True, slots=True)
class MinLengthCheck:
    """Fails a complete answer shorter than `min_chars` (suspiciously short)."""

    min_chars: int = 20
    name: str = "min_length"

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        size = len(answer.text.strip())
        short = answer.complete and size < self.min_chars and not _has_tool_calls(answer)
        reason = f"answer has {size} characters, fewer than {self.min_chars}" if short else ""
        return CheckResult(self.name, not short, reason)


@dataclass(frozen=True, slots=True)
class PuntCheck:
    """Fails an answer in which the model punts ("I don't know", "I cannot")."""

    phrases: Sequence[str] = DEFAULT_PUNTS
    name: str = "punt"

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        text = _normalize(answer.text)
        hit = next((p for p in self.phrases if _normalize(p) in text), None)
        return CheckResult(self.name, hit is None, f"answer punts: {hit!r}" if hit else "")


@dataclass(frozen=True, slots=True)
class RefusalCheck:
    """Fails a refusal: a content-filter finish, or an answer opening with one."""

    phrases: Sequence[str] = DEFAULT_REFUSALS
    name: str = "refusal"

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        choice = answer.response.choices[0] if answer.response.choices else None
        if choice is not None and choice.finish_reason == "content_filter":
            return CheckResult(self.name, False, "finished by the content filter")
        opening = _normalize(answer.text.lstrip()[:200])
        hit = next((p for p in self.phrases if opening.startswith(_normalize(p))), None)
        return CheckResult(self.name, hit is None, f"answer refuses: {hit!r}" if hit else "")


@dataclass(frozen=True, slots=True)
class JsonCheck:
    """When the request asks for JSON, the answer must parse (and match the
    schema of a `json_schema` response format)."""

    name: str = "json"

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        fmt = answer.request.response_format or {}
        if fmt.get("type") not in ("json_object", "json_schema") or not answer.complete:
            return CheckResult(self.name, True)
        try:
            value = orjson.loads(answer.text)
        except orjson.JSONDecodeError as exc:
            return CheckResult(self.name, False, f"answer is not valid JSON: {exc}")
        schema = (fmt.get("json_schema") or {}).get("schema")
        problem = _schema_problem(value, schema) if schema else None
        return CheckResult(self.name, problem is None, problem or "")


def _schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return f"answer does not match the schema: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"response_format schema is invalid: {exc.message}"
    return None


CheckFn = Callable[[AnswerView], "bool | CheckResult | Awaitable[bool | CheckResult]"]


@dataclass(frozen=True, slots=True)
class CallableCheck:
    """A user-supplied function (sync or async) returning a bool or a CheckResult."""

    function: CheckFn
    name: str = "custom"
    reason: str = field(default="custom check failed")

    async def evaluate(self, answer: AnswerView) -> CheckResult:
        outcome = self.function(answer)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if isinstance(outcome, CheckResult):
            return outcome
        return CheckResult(self.name, bool(outcome), "" if outcome else self.reason)
