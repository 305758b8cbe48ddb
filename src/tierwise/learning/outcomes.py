"""Outcome tables: per-prompt quality (and cost) of several models on the same prompts.

Scores are normalised to [0, 1]: `binary` (0 or 1) and `0-1` scores stay as they are,
`1-10` judge scores map by (s - 1) / 9. A row's scale is the one given to the reader
(`--score-scale`), else its `score_scale` cell (a value naming `1_10`/`1-10`, or
`0_1`/`0-1`/`binary`), else read from the values: a row with a score above 1 is on
1-10; in a table with no score above 1 every row is on 0-1; in a table where other rows
have scores above 1, a row whose scores are all exactly 1 is ambiguous (perfect on 0-1,
the worst on 1-10) and an error, and any other row is on 0-1. A score outside its
given scale is an error. An empty cell is NaN (no result); a score that is not a number,
or a row without any score, is an error naming the line and column. Costs are USD per
request: the `cost_usd__<model>` cell where present, else estimated tokens times a price.
A file that is not text (such as a router `.npz` given as a table) is an error saying so.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierwise.errors import ConfigError
from tierwise.pricing import Price, lookup_model

Matrix = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

SCORE, COST, OUT_TOKENS = "score__", "cost_usd__", "out_tokens_est__"
CONTAMINATED = "contaminated_in_routellm_train"
MILLION = 1_000_000.0
SCALES = ("binary", "0-1", "1-10")
SCALE_RANGE = {"binary": (0.0, 1.0), "0-1": (0.0, 1.0), "1-10": (1.0, 10.0)}
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True, slots=True)
class OutcomeTable:
    """Rows are prompts, columns are models; `scores` in [0, 1] and `costs` in USD,
    NaN where unknown. `texts` are what a router sees (`query_only` when set).
    `contaminated` marks rows with `contaminated_in_routellm_train=1` (None when the
    table has no such column)."""

    prompt_ids: list[str]
    texts: list[str]
    sources: list[str]
    models: list[str]
    scores: Matrix
    costs: Matrix
    content_hash: str
    contaminated: Mask | None = None

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def subset(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> OutcomeTable:
        """The given rows, in order (same models and hash)."""
        index = np.asarray(rows, dtype=np.intp)
        return OutcomeTable(
            [self.prompt_ids[i] for i in index],
            [self.texts[i] for i in index],
            [self.sources[i] for i in index],
            list(self.models),
            self.scores[index],
            self.costs[index],
            self.content_hash,
            None if self.contaminated is None else self.contaminated[index],
        )

    def mean_scores(self) -> Matrix:
        return _nanmean_columns(self.scores)

    def mean_costs(self) -> Matrix:
        return _nanmean_columns(self.costs)

    def renamed(self, mapping: Mapping[str, str]) -> OutcomeTable:
        """The same table with models renamed (`{old: new}`); an unknown old name, or
        two models ending with one name, is a ValueError."""
        unknown = sorted(set(mapping) - set(self.models))
        if unknown:
            raise ValueError(f"cannot rename {unknown}: the table's models are {self.models}")
        names = [mapping.get(m, m) for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"renaming gives two models the same name: {names}")
        return replace(self, models=names)

    def with_models(self, names: Sequence[str]) -> OutcomeTable:
        """Only the given models' columns, in that order (rows kept)."""
        unknown = [n for n in names if n not in self.models]
        if unknown:
            raise ValueError(f"{unknown} are not models of the table: {self.models}")
        index = [self.models.index(n) for n in names]
        return replace(
            self, models=list(names), scores=self.scores[:, index], costs=self.costs[:, index]
        )


def _nanmean_columns(matrix: Matrix) -> Matrix:
    known = ~np.isnan(matrix)
    counts = known.sum(axis=0)
    totals = np.where(known, matrix, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: Matrix = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
    return result


def read_outcomes(
    path: str | Path,
    *,
    prices: Mapping[str, Price] | None = None,
    default_out_tokens: float | None = None,
    score_scale: str | None = None,
) -> OutcomeTable:
    """Read an outcome-table CSV. `prices` (USD per million tokens) override the
    shipped price table for deriving missing costs; `default_out_tokens` stands in
    for an empty `out_tokens_est__<model>` cell (None: the cost stays unknown);
    `score_scale` (binary, 0-1 or 1-10) is every row's scale."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read outcome table: {exc}", file=str(path)) from None
    return parse_outcomes(
        data,
        prices=prices,
        default_out_tokens=default_out_tokens,
        name=str(path),
        score_scale=score_scale,
    )


def decode_text(data: bytes, name: str) -> str:
    """The CSV's text; a binary file (a zip archive such as a router `.npz`, or bytes
    that are not UTF-8) is a ConfigError saying what it is."""
    if data.startswith(ZIP_MAGIC) or b"\x00" in data[:8192]:
        kind = "a zip archive (a router file?)" if data.startswith(ZIP_MAGIC) else "binary"
        raise ConfigError(
            f"this is {kind}, not an outcome table (a CSV file); a router file goes to --router",
            file=name,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}), so not an outcome table (a CSV file)", file=name
        ) from None


def parse_outcomes(
    data: bytes,
    *,
    prices: Mapping[str, Price] | None = None,
    default_out_tokens: float | None = None,
    name: str = "<outcomes>",
    score_scale: str | None = None,
) -> OutcomeTable:
    """Parse outcome-table CSV bytes; see `read_outcomes`."""
    if score_scale is not None and score_scale not in SCALES:
        raise ConfigError(f"unknown score scale {score_scale!r}; known: {', '.join(SCALES)}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(io.StringIO(decode_text(data, name), newline=""))
    header = reader.fieldnames or []
    for column in ("prompt_id", "prompt"):
        if column not in header:
            raise ConfigError(f"outcome table has no {column!r} column", file=name)
    models = [c[len(SCORE) :] for c in header if c.startswith(SCORE)]
    if not models:
        raise ConfigError(f"outcome table has no '{SCORE}<model>' columns", file=name)
    rows, lines = [], []
    for row in reader:
        rows.append(row)
        lines.append(reader.line_num)
    for row, line in zip(rows, lines, strict=True):
        _check_scores(row, line, models, name)
    ids = [(r.get("prompt_id") or "").strip() or f"row-{i}" for i, r in enumerate(rows)]
    texts = [(r.get("query_only") or "").strip() or (r.get("prompt") or "") for r in rows]
    sources = [r.get("source_benchmark") or "" for r in rows]
    shape = (len(rows), len(models))
    scores = _scores(rows, lines, models, score_scale, name)
    price_of = {m: _price(m, prices) for m in models}
    costs = np.array(
        [[_cost(r, m, price_of[m], default_out_tokens) for m in models] for r in rows],
        dtype=np.float64,
    ).reshape(shape)
    digest = hashlib.sha256(data).hexdigest()
    flagged = None
    if CONTAMINATED in header:
        flagged = np.array([_number(r.get(CONTAMINATED)) == 1.0 for r in rows], dtype=bool)
    return OutcomeTable(ids, texts, sources, models, scores, costs, digest, flagged)


def _check_scores(row: Mapping[str, str | None], line: int, models: list[str], name: str) -> None:
    """A score that is not a number, or a row with no score at all, is an error
    naming the line and the column."""
    present = 0
    for model in models:
        cell = (row.get(SCORE + model) or "").strip()
        if not cell:
            continue
        if not math.isfinite(_parsed(cell)):
            raise ConfigError(
                f"line {line}, column {SCORE}{model}: {cell!r} is not a number", file=name
            )
        present += 1
    if not present:
        raise ConfigError(
            f"line {line}: no score in any {SCORE}<model> column "
            f"(prompt_id {row.get('prompt_id')!r})",
            file=name,
        )


def _parsed(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def _number(cell: str | None) -> float:
    if cell is None or not cell.strip():
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _scores(
    rows: Sequence[Mapping[str, str | None]],
    lines: Sequence[int],
    models: list[str],
    given: str | None,
    name: str,
) -> Matrix:
    """The normalised score matrix, each row read on its scale (see the module doc)."""
    raw = np.array([[_number(r.get(SCORE + m)) for m in models] for r in rows])
    raw = raw.reshape(len(rows), len(models))
    mixed = bool(np.nan_to_num(raw, nan=0.0).max(initial=0.0) > 1.0)
    scales = [
        _row_scale(r, v, given, mixed, (line, name))
        for r, v, line in zip(rows, raw, lines, strict=True)
    ]
    for values, scale, line in zip(raw, scales, lines, strict=True):
        _check_range(values, scale, models, (line, name))
    normalised = [_normalised(v, sc) for v, sc in zip(raw, scales, strict=True)]
    result: Matrix = np.array(normalised, dtype=np.float64).reshape(raw.shape)
    return result


def parse_scale(text: str) -> str | None:
    """binary, 0-1 or 1-10 from a `score_scale` cell such as `correct_0_1` or
    `gpt4_judge_1_10_mean_of_2_turns`; None when it names none of them."""
    lowered = text.strip().lower().replace("_", "-")
    if "1-10" in lowered:
        return "1-10"
    if "binary" in lowered:
        return "binary"
    return "0-1" if "0-1" in lowered else None


def _row_scale(
    row: Mapping[str, str | None],
    values: Matrix,
    given: str | None,
    mixed: bool,
    where: tuple[int, str],
) -> str:
    """The row's scale: given, else its `score_scale` cell, else read from its values."""
    if given is not None:
        return given
    cell = (row.get("score_scale") or "").strip()
    if cell:
        scale = parse_scale(cell)
        if scale is None:
            raise ConfigError(
                f"line {where[0]}, column score_scale: {cell!r} names no scale "
                f"({', '.join(SCALES)})",
                file=where[1],
            )
        return scale
    known = values[~np.isnan(values)]
    if (known > 1.0).any():
        return "1-10"
    if mixed and known.size and (known == 1.0).all():
        raise ConfigError(
            f"line {where[0]}: every score is 1, which is perfect on a 0-1 scale and the "
            "worst on 1-10 (other rows score above 1); give --score-scale or a "
            "score_scale column",
            file=where[1],
        )
    return "0-1"


def _check_range(values: Matrix, scale: str, models: list[str], where: tuple[int, str]) -> None:
    low, high = SCALE_RANGE[scale]
    for model, value in zip(models, values.tolist(), strict=True):
        bad = not low <= value <= high or (scale == "binary" and value not in (0.0, 1.0))
        if not math.isnan(value) and bad:
            raise ConfigError(
                f"line {where[0]}, column {SCORE}{model}: {value:g} is not a {scale} score",
                file=where[1],
            )


def _normalised(values: Matrix, scale: str) -> Matrix:
    result: Matrix = (values - 1.0) / 9.0 if scale == "1-10" else values
    return result


def _price(model: str, prices: Mapping[str, Price] | None) -> Price | None:
    if prices is not None and model in prices:
        return prices[model]
    info = lookup_model(model)
    return info.price if info is not None else None


def _cost(
    row: Mapping[str, str | None], model: str, price: Price | None, default_out: float | None
) -> float:
    given = _number(row.get(COST + model))
    if not math.isnan(given) or price is None:
        return given
    prompt_tokens = _number(row.get("prompt_tokens_est"))
    out_tokens = _number(row.get(OUT_TOKENS + model))
    if math.isnan(out_tokens) and default_out is not None:
        out_tokens = default_out
    if math.isnan(prompt_tokens) or math.isnan(out_tokens):
        return math.nan
    return (
        prompt_tokens * float(price.input_per_mtok) + out_tokens * float(price.output_per_mtok)
    ) / MILLION
