"""What the request models of both formats share: JSON's integers, the
validation entry point, and errors that name the field."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

INT64_MAX = 2**63 - 1
INSTANCE = re.compile(r" or instance of \w+")


def _integral(value: Any) -> Any:
    """JSON draws no line between 2 and 2.0: integral numbers are integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integral = BeforeValidator(_integral)
"""After the bounds of an `int` field: `Annotated[int, Field(ge=1, le=16), Integral]`."""
Positive = Annotated[int, Field(ge=1, le=INT64_MAX), Integral]
"""A positive integer within 64 bits, as upstream APIs and stores need."""


STRICT = ConfigDict(strict=True, extra="ignore")
"""A request object: exact JSON types (no "5" for 5), unknown keys ignored."""
OPEN = ConfigDict(strict=True, extra="allow")
"""An object passed on as given: its unknown keys are kept."""


Path = list[str | int]


def locate(error: ErrorDetails, body: Any) -> Path:
    """The error's location in the body: pydantic's `loc` without the union
    tags it adds (steps that are neither keys nor indexes of the data)."""
    path: Path = []
    node, loc = body, error["loc"]
    for i, step in enumerate(loc):
        if _has(node, step):
            node = node[step]
        elif i == len(loc) - 1 and error["type"] == "missing":
            node = None
        else:
            continue
        path.append(step)
    return path


def _has(node: Any, step: str | int) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def first_problem(exc: ValidationError, body: Any) -> tuple[Path, str]:
    """The deepest failing location and what is wrong there (the alternatives of a
    union joined with "or")."""
    found = [(locate(e, body), _plain(e["msg"])) for e in exc.errors(include_url=False)]
    deepest = max(len(p) for p, _ in found)
    path = next(p for p, _ in found if len(p) == deepest)
    messages = list(dict.fromkeys(m for p, m in found if p == path))
    return path, ", or ".join(messages)


def _plain(message: str) -> str:
    """pydantic's message without the model class names it mentions."""
    return INSTANCE.sub("", message)


def validator(model: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """`model`'s validation of an already parsed JSON value: a validated copy
    (integral numbers as integers) for the decoder to read as plain JSON."""
    check: Callable[[Any], dict[str, Any]] = TypeAdapter(model).validate_python
    return check
