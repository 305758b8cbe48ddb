"""An outcome table as the offline commands read it: its score scale, renamed models
(`--map OLD=NEW`) and, with both `--strong` and `--cheap`, only those two models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tierwise.learning.outcomes import OutcomeTable, read_outcomes


def parse_map(items: Sequence[str]) -> dict[str, str]:
    """`OLD=NEW` pairs as a mapping; a malformed or repeated pair is a ValueError."""
    mapping: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"--map takes OLD=NEW (a model column and its new name), not {item!r}")
        if old.strip() in mapping:
            raise ValueError(f"--map renames {old.strip()!r} twice")
        mapping[old.strip()] = new.strip()
    return mapping


def prepare(
    table: OutcomeTable,
    mapping: Sequence[str] = (),
    strong: str | None = None,
    cheap: str | None = None,
) -> OutcomeTable:
    """`table` with models renamed, then cut to (cheap, strong) when both are named."""
    if mapping:
        table = table.renamed(parse_map(mapping))
    if strong and cheap:
        for role, name in (("strong", strong), ("cheap", cheap)):
            if name not in table.models:
                raise ValueError(
                    f"{role} model {name!r} is not in the table; its models: "
                    f"{', '.join(table.models)}"
                )
        if strong == cheap:
            raise ValueError(f"the strong and the cheap model are both {cheap!r}")
        table = table.with_models([m for m in table.models if m in (strong, cheap)])
    return table


def load_table(
    path: Path,
    *,
    score_scale: str | None = None,
    mapping: Sequence[str] = (),
    strong: str | None = None,
    cheap: str | None = None,
) -> OutcomeTable:
    """Read and prepare an outcome table (see `prepare`)."""
    return prepare(read_outcomes(path, score_scale=score_scale), mapping, strong, cheap)
