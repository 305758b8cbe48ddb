"""Answer texts of several models on the prompts of an outcome table, and their
normalisation for comparing answers (agreement checks in cascades).

An answers file is a CSV with `prompt_id` and one `response__<model>` column per model
of the outcome table. Answers are compared only after normalisation: for a multiple-choice
prompt (one whose text lists options such as `A) ...`, `B) ...` or `1) ...`), the option
label the answer names; for any other prompt, the Python code in the answer (as an AST
dump, so formatting and comments do not matter) when it parses. Anything else (a refusal
such as "I do", an empty cell, code that does not parse) is no answer (None).
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierwise.errors import ConfigError

RESPONSE = "response__"
OPEN = "open"
Codes = npt.NDArray[np.intp]

_OPTION = re.compile(r"^\s*\(?([A-Z](?=[).:])|[1-9](?=\)))[).:]\s+(\S.*?)\s*$", re.MULTILINE)
_PREFIX = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)\b\s*(?:is\s*)?:?\s*", re.I
)
_LABEL = re.compile(r"^[(\[]?([A-Za-z]|\d{1,2})[)\]]?(?=$|[.:,;)]|\s*[(\-\u2013:])")
_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)```", re.S)
_TAGGED = re.compile(r"\[PYTHON\](.*?)\[/PYTHON\]", re.S)


@dataclass(frozen=True, slots=True)
class AnswerTable:
    """Answer texts aligned to an outcome table: `texts[i][j]` is model `models[j]`'s
    answer to prompt `prompt_ids[i]` ("" when the cell is empty)."""

    prompt_ids: list[str]
    models: list[str]
    texts: list[list[str]]
    content_hash: str


def options(prompt: str) -> dict[str, str]:
    """The options a prompt lists, label to text: lines `A) text`, `(B) text`, `C. text`
    or `1) text` (not `1. text`, a numbered list), taking the run of consecutive labels
    from A (or 1)."""
    found: dict[str, str] = {}
    for match in _OPTION.finditer(prompt):
        found.setdefault(match.group(1), match.group(2))
    for first in ("A", "1"):
        run: dict[str, str] = {}
        label = first
        while label in found:
            run[label] = found[label]
            label = chr(ord(label) + 1)
        if len(run) >= 2:
            return run
    return {}


def category(prompt: str) -> str:
    """`choice2` (two options), `choiceN` (three or more) or `open` (no options)."""
    count = len(options(prompt))
    if count >= 3:
        return "choiceN"
    return "choice2" if count == 2 else OPEN


def normalise_choice(answer: str, labels: Mapping[str, str]) -> str | None:
    """The option label a multiple-choice answer names ("D", "C\\n", "(B)", "A) text",
    "Answer: 2", or exactly one option's text), else None."""
    text = _PREFIX.sub("", answer.strip(), count=1)
    match = _LABEL.match(text)
    if match is not None:
        label = match.group(1).upper()
        return label if label in labels else None
    plain = text.rstrip(".").strip().lower()
    hits = [k for k, v in labels.items() if plain and plain == v.rstrip(".").strip().lower()]
    return hits[0] if len(hits) == 1 else None


def normalise_code(answer: str) -> str | None:
    """The Python code of an answer (fenced or [PYTHON] blocks, else the whole text;
    Windows line ends read as newlines) as an AST dump, or None when there is none or it
    does not parse."""
    text = answer.replace("\r\n", "\n")
    blocks = _FENCE.findall(text) or _TAGGED.findall(text)
    code = "\n".join(blocks) if blocks else text
    if not code.strip():
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    return ast.dump(tree) if tree.body else None


def normalise(answer: str, prompt: str) -> str | None:
    """`normalise_choice` for a prompt with options, else `normalise_code`."""
    labels = options(prompt)
    return normalise_choice(answer, labels) if labels else normalise_code(answer)


def answer_codes(texts: Sequence[Sequence[str]], prompts: Sequence[str]) -> Codes:
    """Matrix (prompts, models) of normalised answers as small integers, equal within a
    row exactly when the normalised answers are equal; -1 for no answer."""
    codes = np.full((len(texts), len(texts[0]) if texts else 0), -1, dtype=np.intp)
    for i, (row, prompt) in enumerate(zip(texts, prompts, strict=True)):
        labels = options(prompt)
        seen: dict[str, int] = {}
        for j, answer in enumerate(row):
            value = normalise_choice(answer, labels) if labels else normalise_code(answer)
            if value is not None:
                codes[i, j] = seen.setdefault(value, len(seen))
    return codes


def read_answers(path: str | Path, prompt_ids: Sequence[str], models: Sequence[str]) -> AnswerTable:
    """Read an answers CSV and align it to an outcome table's prompts and models."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read answers file: {exc}", file=str(path)) from None
    return parse_answers(data, prompt_ids, models, name=str(path))


def parse_answers(
    data: bytes, prompt_ids: Sequence[str], models: Sequence[str], *, name: str = "<answers>"
) -> AnswerTable:
    """Parse answers CSV bytes; every model needs a `response__<model>` column, every
    prompt id a row, and every row a known, unique prompt id (errors name the column or
    the line)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = reader.fieldnames or []
    if "prompt_id" not in header:
        raise ConfigError("answers file has no 'prompt_id' column", file=name)
    for model in models:
        if RESPONSE + model not in header:
            raise ConfigError(
                f"answers file has no column {RESPONSE}{model} (a model of the outcome table)",
                file=name,
            )
    wanted = set(prompt_ids)
    rows: dict[str, list[str]] = {}
    for row in reader:
        pid = (row.get("prompt_id") or "").strip()
        _check_row(pid, wanted, rows, reader.line_num, name)
        rows[pid] = [row.get(RESPONSE + m) or "" for m in models]
    missing = [p for p in prompt_ids if p not in rows]
    if missing:
        raise ConfigError(
            f"{len(missing)} prompt(s) of the outcome table have no answers row, "
            f"first {missing[0]!r}",
            file=name,
        )
    texts = [rows[p] for p in prompt_ids]
    return AnswerTable(list(prompt_ids), list(models), texts, hashlib.sha256(data).hexdigest())


def _check_row(
    pid: str, wanted: set[str], rows: Mapping[str, list[str]], line: int, name: str
) -> None:
    if pid not in wanted:
        raise ConfigError(f"line {line}: prompt_id {pid!r} is not in the outcome table", file=name)
    if pid in rows:
        raise ConfigError(f"line {line}: prompt_id {pid!r} appears twice", file=name)
