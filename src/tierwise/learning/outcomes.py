"""Outcome tables: per-prompt quality (and cost) of several models on the same prompts.

Scores are normalised to [0, 1]: 0/1 correctness stays as is, 1-10 judge scores map
by (s - 1) / 9. An empty cell is NaN (no result); a score that is not a number, or a
row without any score, is an error naming the line and column. Costs are USD per request:
the `cost_usd__<model>` cell where present, else estimated tokens times a price.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
) -> OutcomeTable:
    """Read an outcome-table CSV. `prices` (USD per million tokens) override the
    shipped price table for deriving missing costs; `default_out_tokens` stands in
    for an empty `out_tokens_est__<model>` cell (None: the cost stays unknown)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read outcome table: {exc}", file=str(path)) from None
    return parse_outcomes(
        data, prices=prices, default_out_tokens=default_out_tokens, name=str(path)
    )


def parse_outcomes(
    data: bytes,
    *,
    prices: Mapping[str, Price] | None = None,
    default_out_tokens: float | None = None,
    name: str = "<outcomes>",
) -> OutcomeTable:
    """Parse outcome-table CSV bytes; see `read_outcomes`."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
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
    scores = np.array([_row_scores(r, models) for r in rows], dtype=np.float64).reshape(shape)
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


def _row_scores(row: Mapping[str, str | None], models: list[str]) -> list[float]:
    raw = [_number(row.get(SCORE + m)) for m in models]
    scale = (row.get("score_scale") or "").lower()
    ten = "1_10" in scale or "1-10" in scale
    if not scale:
        ten = any(v > 1.0 for v in raw if not math.isnan(v))
    if ten:
        return [_unit((v - 1.0) / 9.0) for v in raw]
    return [_unit(v) for v in raw]


def _unit(value: float) -> float:
    return value if math.isnan(value) else min(max(value, 0.0), 1.0)


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
