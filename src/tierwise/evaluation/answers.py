"""Answer texts of several models on the prompts of an outcome table, and their
normalisation for comparing answers (agreement checks in cascades).

An answers file is a CSV with `prompt_id` and one `response__<model>` column per model
of the outcome table. Answers are compared only after normalisation
(`tierwise.checks.normalise`, the functions the gateway's `vote` check uses): the option
label a multiple-choice answer names, else the Python code in the answer as an AST dump;
anything else is no answer. Rows whose prompt id is not in the table are counted and
skipped, so one answers file can serve a training and a test table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierwise.checks.normalise import (
    OPEN,
    category,
    normalise,
    normalise_choice,
    normalise_code,
    options,
)
from tierwise.errors import ConfigError

__all__ = [
    "OPEN",
    "AnswerTable",
    "Codes",
    "answer_codes",
    "category",
    "normalise",
    "normalise_choice",
    "normalise_code",
    "options",
    "parse_answers",
    "read_answers",
]

RESPONSE = "response__"
Codes = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class AnswerTable:
    """Answer texts aligned to an outcome table: `texts[i][j]` is model `models[j]`'s
    answer to prompt `prompt_ids[i]` ("" when the cell is empty). `skipped` counts the
    file's rows whose prompt id is not in the table."""

    prompt_ids: list[str]
    models: list[str]
    texts: list[list[str]]
    content_hash: str
    skipped: int = 0


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
    """Parse answers CSV bytes; every model needs a `response__<model>` column and every
    prompt id a row; a repeated prompt id is an error naming the line, a row for a prompt
    not in `prompt_ids` is counted and skipped."""
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
    seen: set[str] = set()
    for row in reader:
        pid = (row.get("prompt_id") or "").strip()
        _check_row(pid, seen, reader.line_num, name)
        if pid in wanted:
            rows[pid] = [row.get(RESPONSE + m) or "" for m in models]
    missing = [p for p in prompt_ids if p not in rows]
    if missing:
        raise ConfigError(
            f"{len(missing)} prompt(s) of the outcome table have no answers row, "
            f"first {missing[0]!r}",
            file=name,
        )
    texts = [rows[p] for p in prompt_ids]
    digest = hashlib.sha256(data).hexdigest()
    return AnswerTable(list(prompt_ids), list(models), texts, digest, len(seen - wanted))


def _check_row(pid: str, seen: set[str], line: int, name: str) -> None:
    if pid in seen:
        raise ConfigError(f"line {line}: prompt_id {pid!r} appears twice", file=name)
    seen.add(pid)


def aligned(table: AnswerTable, prompt_ids: Sequence[str]) -> AnswerTable:
    """The rows of `table` for `prompt_ids` (each must be in it), in that order."""
    index = {p: i for i, p in enumerate(table.prompt_ids)}
    texts = [table.texts[index[p]] for p in prompt_ids]
    return AnswerTable(list(prompt_ids), table.models, texts, table.content_hash, table.skipped)
