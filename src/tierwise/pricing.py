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
    input_per_mtok: Decimal = ZERO
    output_per_mtok: Decimal = ZERO
    cached_input_per_mtok: Decimal | None = None

    def cost_usd(self, usage: Usage) -> Decimal:
        """Exact cost of `usage`; cached input tokens are a subset of input tokens."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_price = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else (self.cached_input_per_mtok)
        )
        total = (
            (usage.input_tokens - cached) * self.input_per_mtok
            + cached * cached_price
            + usage.output_tokens * self.output_per_mtok
        )
        return total / MILLION

    def worst_case_usd(self, input_tokens: int, max_output_tokens: int) -> Decimal:
        return self.cost_usd(Usage(input_tokens, max_output_tokens))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    price: Price
    context_window: int | None = None
    max_output_tokens: int | None = None


@functools.cache
def price_table() -> dict[str, ModelInfo]:
    """The shipped table of common models (see `tierwise/data/models.yaml`)."""
    text = resources.files("tierwise").joinpath("data/models.yaml").read_text()
    raw: dict[str, dict[str, object]] = yaml.safe_load(text)
    return {name: _model_info(name, row) for name, row in raw.items()}


def _model_info(name: str, row: dict[str, object]) -> ModelInfo:
    cached = row.get("cached_input")
    price = Price(
        Decimal(str(row["input"])),
        Decimal(str(row["output"])),
        None if cached is None else Decimal(str(cached)),
    )
    window, max_out = row.get("context_window"), row.get("max_output")
    return ModelInfo(
        name,
        price,
        int(str(window)) if window is not None else None,
        int(str(max_out)) if max_out is not None else None,
    )


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
