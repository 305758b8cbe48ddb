"""`tierwise train` (choose, estimate and save a learned router) and `tierwise fit-examples`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import fail, need_extra

MAP_HELP = "Rename a model: OLD=NEW (repeatable)."
SCALE_HELP = "Score scale of every row: binary, 0-1 or 1-10 (default: a score_scale column)."


def train_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV (prompt, score__<model>, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Router file to write (.npz).")],
    method: Annotated[
        str, typer.Option(help="knn, logistic, mf, a comma-separated list, or all.")
    ] = "knn",
    embedder: Annotated[
        str, typer.Option(help="hashing, static or minilm, or several: hashing,minilm.")
    ] = "hashing",
    quality_target: Annotated[
        float, typer.Option(help="Share of the strong model's quality to reach, cheapest.")
    ] = 0.95,
    folds: Annotated[
        int, typer.Option(help="Outer folds of the estimate on unseen prompts (0: skip).")
    ] = 5,
    inner_folds: Annotated[
        int, typer.Option(help="Folds choosing hyperparameters and the operating point.")
    ] = 5,
    holdout_by: Annotated[
        str | None,
        typer.Option(help="Estimate by holding out each group of this column instead."),
    ] = None,
    strong: Annotated[str | None, typer.Option(help="The strong model (default: best).")] = None,
    cheap: Annotated[
        str | None, typer.Option(help="The cheap model; with --strong: only these two.")
    ] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help=MAP_HELP)] = None,
    score_scale: Annotated[str | None, typer.Option(help=SCALE_HELP)] = None,
    cost_weight: Annotated[
        float | None, typer.Option(help="Store this cost weight instead of the chosen point.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for folds and initialisation.")] = 0,
) -> None:
    """Choose a learned router's hyperparameters (k, C, rank, embedder) and operating
    point by cross-validation on DATA only, print its estimate on unseen prompts (nested
    cross-validation) with 95% intervals, and write it, point included, to OUT."""
    need_extra("tierwise train")
    from tierwise.errors import TierwiseError
    from tierwise.learning.command import KNOWN_METHODS, Plan, describe, names, run
    from tierwise.learning.prepare import load_table
    from tierwise.learning.store import save_router

    if (cost_weight is not None and cost_weight < 0) or folds < 0:
        raise fail("--cost-weight and --folds must be >= 0")
    try:
        plan = Plan(
            names(method, KNOWN_METHODS, "method"),
            names(embedder, ("hashing", "static", "minilm", "structure"), "embedder"),
            quality_target,
            folds,
            inner_folds,
            holdout_by,
            strong,
            cheap,
            seed,
            cost_weight,
        )
        table = load_table(
            data, score_scale=score_scale, mapping=map_ or (), strong=strong, cheap=cheap
        )
        router, selection, result = run(table, plan)
        save_router(router, out)
    except ImportError as exc:
        raise fail(f"{exc}: training needs scikit-learn (pip install 'tierwise[eval]')") from None
    except (TierwiseError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo(describe(table, router, selection, result))
    typer.echo(f"wrote {out}")


def fit_examples_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV (prompt, score__<model>, ...).")],
    cheap: Annotated[str, typer.Option(help="The cheap model's column name.")],
    strong: Annotated[str, typer.Option(help="The strong model's column name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="YAML file of examples to write.")],
    embedder: Annotated[str, typer.Option(help="hashing, static or minilm.")] = "hashing",
    per_tier: Annotated[int, typer.Option(help="Examples kept per tier.")] = 32,
    map_: Annotated[list[str] | None, typer.Option("--map", help=MAP_HELP)] = None,
    score_scale: Annotated[str | None, typer.Option(help=SCALE_HELP)] = None,
) -> None:
    """Choose the embedding router's examples from outcome data: prompts the cheap
    model answered well, and prompts only the strong model answered well. The file
    also names the embedder, for `tierwise eval --router FILE`."""
    need_extra("tierwise fit-examples")
    import yaml

    from tierwise.errors import TierwiseError
    from tierwise.learning.examples import fit_examples
    from tierwise.learning.prepare import load_table
    from tierwise.learning.store import make_embedder
    from tierwise.learning.train import table_vectors

    if embedder.strip().lower().startswith("structure"):
        raise fail("the embedding router takes hashing, static or minilm examples")
    try:
        table = load_table(data, score_scale=score_scale, mapping=map_ or ())
        chosen = make_embedder(embedder)
        vectors = table_vectors(table, chosen)
        examples = fit_examples(table, cheap, strong, chosen, per_tier=per_tier, vectors=vectors)
    except (TierwiseError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    family = next((f for f in ("minilm", "static") if f in chosen.name.lower()), "hashing")
    body = {"kind": "embedding", "embedder": family, "examples": examples}
    out.write_text(yaml.safe_dump(body, allow_unicode=True, width=100, sort_keys=False))
    typer.echo(
        f"{out}: {len(examples['@cheapest'])} cheap and "
        f"{len(examples['@strongest'])} strong examples from {table.content_hash[:12]}"
    )
