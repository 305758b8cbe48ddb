"""`tierwise eval` and `tierwise calibrate`: measure a router on held-out prompts and
choose its operating point from data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SPEC_HELP = "learned:<method>:<embedder>, heuristic or embedding-centroid:<embedder>."


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def eval_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV to evaluate on.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")],
    router: Annotated[str, typer.Option(help=SPEC_HELP)] = "learned:knn:hashing",
    folds: Annotated[int, typer.Option(help="Cross-validation folds (grouped by text).")] = 5,
    train: Annotated[
        Path | None, typer.Option(help="Train on this table instead (no folds).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for folds and initialisation.")] = 0,
    router_tax: Annotated[
        float, typer.Option(help="The router's own cost per request, added to its points.")
    ] = 0.0,
) -> None:
    """Evaluate ROUTER on DATA's prompts it was not trained on; write metrics.json,
    decisions.csv, report.md and plots to OUT."""
    from tierwise.errors import TierwiseError
    from tierwise.evaluation.report import write_outputs
    from tierwise.evaluation.runner import evaluate
    from tierwise.learning.outcomes import read_outcomes

    try:
        table = read_outcomes(data)
        train_table = read_outcomes(train) if train is not None else None
        result = evaluate(
            table, router, folds=folds, seed=seed, train_table=train_table, router_tax=router_tax
        )
        paths = write_outputs(result, out)
    except (TierwiseError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    typer.echo((out / "report.md").read_text())
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


def calibrate_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV to calibrate on.")],
    router: Annotated[
        str, typer.Option(help="learned:<method>:<embedder> (held out) or a router file.")
    ] = "learned:knn:hashing",
    strong_share: Annotated[
        float | None, typer.Option(help="Target share of strong-model calls (0..1).")
    ] = None,
    quality_floor: Annotated[
        float | None, typer.Option(help="Target quality relative to always-strong, e.g. 0.97.")
    ] = None,
    budget_per_1k: Annotated[
        float | None, typer.Option(help="Target cost per 1,000 requests (USD when known).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="YAML snippet to write (default: print).")
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds for a spec.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for folds and the bootstrap.")] = 0,
) -> None:
    """Choose ROUTER's cost weight (or strong win-rate threshold) on DATA to meet one
    target, and print a YAML router block with expected quality, cost and 95% CIs."""
    from tierwise.errors import TierwiseError
    from tierwise.evaluation.calibrate import Target, calibrate, snippet
    from tierwise.learning.outcomes import read_outcomes

    given = {"strong_share": strong_share, "quality_floor": quality_floor}
    given["budget_per_1k"] = budget_per_1k
    chosen = [(k, v) for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        raise _fail("give exactly one of --strong-share, --quality-floor, --budget-per-1k")
    is_file = not router.startswith("learned:")
    try:
        result = calibrate(
            read_outcomes(data),
            Target(*chosen[0]),
            spec=None if is_file else router,
            router_file=Path(router) if is_file else None,
            folds=folds,
            seed=seed,
        )
    except (TierwiseError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    text = snippet(result, router if is_file else "router.npz")
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"wrote {out}")
