"""`tierwise train`: fit a learned router on an outcome table and save it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from tierwise.learning.train import Metrics

METHODS = ("knn", "logistic", "mf")


def train_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV (prompt, score__<model>, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Router file to write (.npz).")],
    method: Annotated[str, typer.Option(help="knn, logistic or mf.")] = "knn",
    embedder: Annotated[str, typer.Option(help="hashing or minilm.")] = "hashing",
    folds: Annotated[
        int, typer.Option(help="Measure by K-fold cross-validation first (0: skip).")
    ] = 0,
    cost_weight: Annotated[
        float, typer.Option(help="Default cost weight stored with the router (>= 0).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for folds and initialisation.")] = 0,
) -> None:
    """Train a learned router on DATA and write it to OUT."""
    from tierwise.errors import TierwiseError
    from tierwise.learning.outcomes import read_outcomes
    from tierwise.learning.store import make_embedder, save_router
    from tierwise.learning.train import train

    if method not in METHODS:
        raise _fail(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if cost_weight < 0 or folds < 0:
        raise _fail("--cost-weight and --folds must be >= 0")
    try:
        table = read_outcomes(data)
        chosen = make_embedder(embedder)
        router = train(
            table, method, chosen, folds=folds or None, seed=seed, cost_weight=cost_weight
        )
        save_router(router, out)
    except (TierwiseError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"trained {method} on {len(table)} prompts x {len(table.models)} models "
        f"({chosen.name}); wrote {out}"
    )
    if folds:
        typer.echo(f"held-out ({folds}-fold, by cost weight):")
        typer.echo(format_metrics(_metrics(router.extra["cross_validation"]["router"])))


def _metrics(rows: list[dict[str, Any]]) -> list[Metrics]:
    from tierwise.learning.train import Metrics

    return [
        Metrics(m["name"], _number(m["quality"]), _number(m["cost_usd"]), m["shares"]) for m in rows
    ]


def format_metrics(rows: list[Metrics]) -> str:
    """A markdown table: quality, cost per request and the most chosen model."""
    lines = ["| policy | quality | cost USD/req | most chosen |", "| --- | --- | --- | --- |"]
    for row in rows:
        model, share = max(row.shares.items(), key=lambda kv: kv[1], default=("-", 0.0))
        cost = "n/a" if math.isnan(row.cost_usd) else f"{row.cost_usd:.6f}"
        quality = "n/a" if math.isnan(row.quality) else f"{row.quality:.4f}"
        lines.append(f"| {row.name} | {quality} | {cost} | {model} ({share:.0%}) |")
    return "\n".join(lines)


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def fit_examples_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV (prompt, score__<model>, ...).")],
    cheap: Annotated[str, typer.Option(help="The cheap model's column name.")],
    strong: Annotated[str, typer.Option(help="The strong model's column name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="YAML file of examples to write.")],
    embedder: Annotated[str, typer.Option(help="hashing or minilm.")] = "hashing",
    per_tier: Annotated[int, typer.Option(help="Examples kept per tier.")] = 32,
) -> None:
    """Choose the embedding router's examples from outcome data: prompts the cheap
    model answered well, and prompts only the strong model answered well."""
    import yaml

    from tierwise.errors import TierwiseError
    from tierwise.learning.examples import fit_examples
    from tierwise.learning.outcomes import read_outcomes
    from tierwise.learning.store import make_embedder

    try:
        table = read_outcomes(data)
        examples = fit_examples(table, cheap, strong, make_embedder(embedder), per_tier=per_tier)
    except (TierwiseError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    out.write_text(yaml.safe_dump({"examples": examples}, allow_unicode=True, width=100))
    typer.echo(
        f"{out}: {len(examples['@cheapest'])} cheap and "
        f"{len(examples['@strongest'])} strong examples from {table.content_hash[:12]}"
    )
