"""`tierwise eval-cascade`: simulate answer-agreement cascades on an outcome table and
its answers file, chosen on training folds and measured on held-out prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CASCADE_HELP = (
    "Also evaluate this fixed cascade, e.g. 'Yi-34B-Chat+mixtral-8x7b-chat:2 > "
    "gpt-4-1106-preview' (stages 'models:k', last part the final model). Repeatable."
)


def eval_cascade_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV to evaluate on.")],
    answers: Annotated[
        Path, typer.Option(help="Answers CSV: prompt_id and response__<model> columns.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")],
    folds: Annotated[int, typer.Option(help="Cross-validation folds (grouped by text).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the folds.")] = 0,
    strong: Annotated[
        str | None, typer.Option(help="Final model (default: best mean score).")
    ] = None,
    cascade: Annotated[list[str] | None, typer.Option(help=CASCADE_HELP)] = None,
    cheap_share: Annotated[
        float, typer.Option(help="Cheap models cost at most this share of the strong one.")
    ] = 0.25,
    max_group: Annotated[int, typer.Option(help="Most cheap models in one stage.")] = 3,
) -> None:
    """Choose cascades (cheap models that must agree, escalating to the strong model)
    per prompt category on training folds; measure them on the held-out prompts; write
    metrics.json, decisions.csv, report.md and plots to OUT."""
    from tierwise.errors import TierwiseError
    from tierwise.evaluation.answers import read_answers
    from tierwise.evaluation.cascade import parse_cascade
    from tierwise.evaluation.cascade_eval import evaluate_cascades, write_cascade_outputs
    from tierwise.learning.outcomes import read_outcomes

    try:
        fixed = [parse_cascade(spec) for spec in cascade or []]
        table = read_outcomes(data)
        texts = read_answers(answers, table.prompt_ids, table.models)
        result = evaluate_cascades(
            table,
            texts,
            folds=folds,
            seed=seed,
            strong=strong,
            cheap_share=cheap_share,
            max_group=max_group,
            fixed=fixed,
        )
        paths = write_cascade_outputs(result, out)
    except (TierwiseError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo((out / "report.md").read_text())
    typer.echo("wrote " + ", ".join(str(p) for p in paths))
