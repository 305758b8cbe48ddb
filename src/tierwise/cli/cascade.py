"""`tierwise eval-cascade`: simulate answer-agreement cascades on an outcome table and
its answers file, chosen on training prompts (folds of the table, each benchmark held
out in turn, or a separate training table) and measured on held-out prompts; optionally
write the policy chosen on all training prompts as a gateway route config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from tierwise.evaluation.cascade_eval import CascadeEval
    from tierwise.learning.outcomes import OutcomeTable

CASCADE_HELP = (
    "Also evaluate this fixed cascade, e.g. 'Yi-34B-Chat+mixtral-8x7b-chat:2 > "
    "gpt-4-1106-preview' (stages 'models:k', last part the final model). Repeatable."
)
ROUTE_HELP = (
    "Write the policy chosen on all training prompts for --route-target as a route config "
    "(YAML: tiers and a route) that the gateway runs exactly as evaluated."
)


def eval_cascade_command(
    data: Annotated[Path, typer.Argument(help="Outcome-table CSV to evaluate on.")],
    answers: Annotated[
        Path,
        typer.Option(
            help="Answers CSV: prompt_id and response__<model> columns (rows of "
            "prompts in neither table are counted and skipped)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")],
    train: Annotated[
        Path | None, typer.Option(help="Choose on this outcome table; measure on DATA.")
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds (grouped by text).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the folds.")] = 0,
    holdout_by: Annotated[
        str | None,
        typer.Option(help="Hold out each group of this column in turn (source_benchmark)."),
    ] = None,
    strong: Annotated[
        str | None, typer.Option(help="Final model (default: best mean training score).")
    ] = None,
    cascade: Annotated[list[str] | None, typer.Option(help=CASCADE_HELP)] = None,
    cheap_share: Annotated[
        float, typer.Option(help="Cheap models cost at most this share of the strong one.")
    ] = 0.25,
    max_group: Annotated[int, typer.Option(help="Most cheap models in one stage.")] = 3,
    inner_folds: Annotated[
        int, typer.Option(help="Inner folds choosing the weight for each target.")
    ] = 5,
    target: Annotated[
        list[float] | None,
        typer.Option(
            help="Quality target (share of the strong model's), chosen on training "
            "prompts only. Repeatable; default 0.95 and 1."
        ),
    ] = None,
    write_route: Annotated[Path | None, typer.Option(help=ROUTE_HELP)] = None,
    route_target: Annotated[float, typer.Option(help="Target of the written route.")] = 0.95,
    route_name: Annotated[str, typer.Option(help="Name of the written route.")] = "cascade",
    score_scale: Annotated[
        str | None,
        typer.Option(
            help="Score scale of every row of both tables: binary, 0-1 or 1-10 "
            "(default: a score_scale column)."
        ),
    ] = None,
) -> None:
    """Choose cascades (a cheap anchor whose answer is served when enough cheap models
    agree, else the strong model) per prompt category on training prompts; measure them
    on held-out prompts; write metrics.json, decisions.csv, report.md and plots to OUT."""
    from tierwise.cli.common import need_extra

    need_extra("tierwise eval-cascade")
    from tierwise.errors import TierwiseError
    from tierwise.evaluation.cascade import parse_cascade

    options: dict[str, Any] = {
        "strong": strong,
        "cheap_share": cheap_share,
        "max_group": max_group,
        "inner_folds": inner_folds,
        "targets": tuple(target or (0.95, 1.0)),
    }
    try:
        options["fixed"] = tuple(parse_cascade(spec) for spec in cascade or [])
        tables = _tables(data, train, score_scale)
        ev = _evaluate(tables, answers, folds, seed, holdout_by, options)
        paths = _write(ev, out, write_route, route_target, route_name)
    except (TierwiseError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo((out / "report.md").read_text())
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


def _tables(
    data: Path, train: Path | None, score_scale: str | None
) -> tuple[OutcomeTable, OutcomeTable | None]:
    """The evaluated table and the training table (None: choose on folds of DATA)."""
    from tierwise.learning.outcomes import read_outcomes

    table = read_outcomes(data, score_scale=score_scale)
    return table, None if train is None else read_outcomes(train, score_scale=score_scale)


def _evaluate(
    tables: tuple[OutcomeTable, OutcomeTable | None],
    answers: Path,
    folds: int,
    seed: int,
    holdout_by: str | None,
    options: dict[str, Any],
) -> CascadeEval:
    from tierwise.evaluation.answers import read_answers
    from tierwise.evaluation.cascade_eval import evaluate_cascades, evaluate_on_test

    table, training = tables
    if training is None:
        texts = read_answers(answers, table.prompt_ids, table.models)
        return evaluate_cascades(
            table, texts, folds=folds, seed=seed, holdout_by=holdout_by, **options
        )
    if holdout_by is not None:
        raise ValueError("hold out by group or train on a separate table, not both")
    if list(training.models) != list(table.models):
        raise ValueError("the training table's models differ from the evaluated table's")
    ids = list(dict.fromkeys(training.prompt_ids + table.prompt_ids))
    texts = read_answers(answers, ids, table.models)
    return evaluate_on_test(table, training, texts, seed=seed, **options)


def _write(ev: CascadeEval, out: Path, route: Path | None, target: float, name: str) -> list[Path]:
    from tierwise.evaluation.cascade_eval import deployable
    from tierwise.evaluation.cascade_report import (
        route_config,
        route_notes,
        route_yaml,
        write_cascade_outputs,
    )

    paths = write_cascade_outputs(ev, out)
    if route is None or ev.pool is None or ev.deploy_rows is None:
        return paths
    policy, choice = deployable(ev, target)
    costs = ev.pool.costs[ev.deploy_rows].mean(axis=0)
    order = [ev.pool.models[j] for j in costs.argsort(kind="stable")]
    config = route_config(policy, order, ev.result.strong, name)
    route.parent.mkdir(parents=True, exist_ok=True)
    route.write_text(route_yaml(config, route_notes(ev, choice, name)))
    return [*paths, route]
