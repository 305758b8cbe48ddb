"""Prices and limits of known models, and exact cost arithmetic.

Money is `Decimal` US dollars throughout; prices are USD per million tokens.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

import yaml

from tierwise.types import Usage

MILLION = Decimal(1_000_000)
SNAPSHOT = re.compile(r"^(.+?)(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|:[\w.-]+)$")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; a cache price left None is the input price."""

    input_per_mtok: Decimal = ZERO
    output_per_mtok: Decimal = ZERO
    cached_input_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None

    def cost_usd(self, usage: Usage) -> Decimal:
        """Exact cost of `usage`: cache reads and cache writes are subsets of the
        input tokens, each at its own price, and the rest at the input price."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        total = (
            (usage.input_tokens - cached - written) * self.input_per_mtok
            + cached * _or(self.cached_input_per_mtok, self.input_per_mtok)
            + written * _or(self.cache_write_per_mtok, self.input_per_mtok)
            + usage.output_tokens * self.output_per_mtok
        )
        return total / MILLION

    def worst_case_usd(self, input_tokens: int, max_output_tokens: int) -> Decimal:
        return self.cost_usd(Usage(input_tokens, max_output_tokens))


def _or(price: Decimal | None, default: Decimal) -> Decimal:
    return default if price is None else price


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    price: Price
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: frozenset[str] | None = None
    """What the model accepts beyond text (`vision`, `tools`, `json_schema`,
    `audio`); None when the table does not say."""


@functools.cache
def price_table() -> dict[str, ModelInfo]:
    """The shipped table of common models (see `tierwise/data/models.yaml`)."""
    text = resources.files("tierwise").joinpath("data/models.yaml").read_text()
    raw: dict[str, dict[str, object]] = yaml.safe_load(text)
    return {name: _model_info(name, row) for name, row in raw.items()}


def _model_info(name: str, row: dict[str, object]) -> ModelInfo:
    price = Price(
        Decimal(str(row["input"])),
        Decimal(str(row["output"])),
        _decimal(row.get("cached_input")),
        _decimal(row.get("cache_write")),
    )
    window, max_out = row.get("context_window"), row.get("max_output")
    capabilities = row.get("capabilities")
    return ModelInfo(
        name,
        price,
        int(str(window)) if window is not None else None,
        int(str(max_out)) if max_out is not None else None,
        frozenset(str(c) for c in capabilities) if isinstance(capabilities, list) else None,
    )


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def lookup_model(name: str) -> ModelInfo | None:
    """Find `name` in the table: exact, then without a `vendor/` prefix, then as
    a dated or tagged snapshot (`gpt-4o-2024-08-06`, `claude-3-5-haiku-20241022`,
    `gpt-4o-latest`, `llama-3-8b:q4`); other suffixes (`o3-mini`) do not match."""
    table = price_table()
    bare = name.rsplit("/", 1)[-1].lower()
    for candidate in (name, bare):
        if candidate in table:
            return table[candidate]
    match = SNAPSHOT.match(bare)
    return table.get(match.group(1)) if match else None
