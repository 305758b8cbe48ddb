"""`tierwise eval` and `tierwise calibrate`: measure a router on held-out prompts (or
replay it on the gateway's request log) and choose its operating point from data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tierwise.cli.common import fail, need_extra

if TYPE_CHECKING:
    from tierwise.evaluation.calibrate import Calibration, Target
    from tierwise.learning.outcomes import OutcomeTable

SPEC_HELP = (
    "learned:<method>:<embedder>, heuristic or embedding-centroid:<embedder>; or a saved "
    "router, evaluated as it is: a router file (.npz), a router config or fit-examples "
    "output (.yaml)."
)
MAP_HELP = "Rename a model column: OLD=NEW (repeatable), e.g. to a config's tier name."
SCALE_HELP = "Score scale of every row: binary, 0-1 or 1-10 (default: a score_scale column)."
DATA_HELP = "Outcome-table CSV (or give --log instead)."
LOG_HELP = "Request-log store URL (sqlite:///path.db or postgresql://...) instead of DATA."
ROUTE_HELP = "With --log: only requests of this route."
STRONG_HELP = "The strong model's column (default: best mean score)."
CHEAP_HELP = (
    "The cheap model's column (default: lowest mean cost among the others); with "
    "--strong, only these two models are used."
)


def _one_source(data: Path | None, log: str | None) -> None:
    if (data is None) == (log is None):
        raise fail("give an outcome table (DATA) or --log STORE_URL, not both or neither")


def eval_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")],
    data: Annotated[Path | None, typer.Argument(help=DATA_HELP)] = None,
    router: Annotated[str, typer.Option(help=SPEC_HELP + " With --log also a file.")] = (
        "learned:knn:hashing"
    ),
    folds: Annotated[int, typer.Option(help="Cross-validation folds (grouped by text).")] = 5,
    train: Annotated[
        Path | None, typer.Option(help="Train on this table instead (no folds).")
    ] = None,
    holdout_by: Annotated[
        str | None,
        typer.Option(help="Hold out each group of this column (source_benchmark) in turn."),
    ] = None,
    holdout: Annotated[
        str | None, typer.Option(help="With --holdout-by: hold out only this group.")
    ] = None,
    strong: Annotated[str | None, typer.Option(help=STRONG_HELP)] = None,
    cheap: Annotated[str | None, typer.Option(help=CHEAP_HELP)] = None,
    log: Annotated[str | None, typer.Option(help=LOG_HELP)] = None,
    route: Annotated[str | None, typer.Option(help=ROUTE_HELP)] = None,
    seed: Annotated[int, typer.Option(help="Seed for folds and initialisation.")] = 0,
    router_tax: Annotated[
        float, typer.Option(help="The router's own cost per request, added to its points.")
    ] = 0.0,
    map_: Annotated[list[str] | None, typer.Option("--map", help=MAP_HELP)] = None,
    score_scale: Annotated[str | None, typer.Option(help=SCALE_HELP)] = None,
) -> None:
    """Evaluate ROUTER on DATA's prompts it was not trained on (a saved router as it
    is), or replay it on a request log; write metrics.json, decisions.csv, report.md
    (and plots) to OUT."""
    need_extra("tierwise eval")
    from functools import partial

    from tierwise.errors import TierwiseError
    from tierwise.evaluation.report import write_outputs, write_replay
    from tierwise.evaluation.saved import evaluate_any as evaluate
    from tierwise.learning.prepare import load_table

    read_table = partial(
        load_table, score_scale=score_scale, mapping=map_ or (), strong=strong, cheap=cheap
    )

    _one_source(data, log)
    if log is not None and (train or holdout_by or holdout or router_tax or map_ or score_scale):
        raise fail(
            "--train, --holdout-by, --holdout, --router-tax, --map and --score-scale need "
            "an outcome table"
        )
    try:
        if log is not None:
            from tierwise.evaluation.replay import read_log, replay

            result = replay(
                read_log(log, route), router, folds=folds, seed=seed, strong=strong, cheap=cheap
            )
            paths = write_replay(result, out)
        else:
            paths = write_outputs(
                evaluate(
                    read_table(data or Path()),
                    router,
                    folds=folds,
                    seed=seed,
                    train_table=read_table(train) if train is not None else None,
                    strong=strong,
                    cheap=cheap,
                    router_tax=router_tax,
                    holdout_by=holdout_by,
                    holdout=holdout,
                ),
                out,
            )
    except (TierwiseError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo((out / "report.md").read_text())
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


def calibrate_command(
    data: Annotated[Path | None, typer.Argument(help=DATA_HELP)] = None,
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
    strong: Annotated[str | None, typer.Option(help=STRONG_HELP)] = None,
    cheap: Annotated[str | None, typer.Option(help=CHEAP_HELP)] = None,
    log: Annotated[str | None, typer.Option(help=LOG_HELP)] = None,
    route: Annotated[str | None, typer.Option(help=ROUTE_HELP)] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds for a spec.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for folds and the bootstrap.")] = 0,
    map_: Annotated[list[str] | None, typer.Option("--map", help=MAP_HELP)] = None,
    score_scale: Annotated[str | None, typer.Option(help=SCALE_HELP)] = None,
) -> None:
    """Choose ROUTER's cost weight (or strong win-rate threshold) on DATA or a request
    log to meet one target, and print a YAML router block with expected quality, cost
    and 95% CIs."""
    need_extra("tierwise calibrate")
    from tierwise.errors import TierwiseError
    from tierwise.evaluation.calibrate import Target, snippet

    given = {"strong_share": strong_share, "quality_floor": quality_floor}
    given["budget_per_1k"] = budget_per_1k
    chosen = [(k, v) for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        raise fail("give exactly one of --strong-share, --quality-floor, --budget-per-1k")
    _one_source(data, log)
    is_file = not router.startswith("learned:")
    if log is not None and (map_ or score_scale):
        raise fail("--map and --score-scale need an outcome table")
    try:
        target = Target(*chosen[0])
        table = None
        if data is not None:
            from tierwise.learning.prepare import load_table

            mapping = map_ or ()
            table = load_table(
                data, score_scale=score_scale, mapping=mapping, strong=strong, cheap=cheap
            )
        result = _calibrate(table, log, route, target, router, (strong, cheap), folds, seed)
    except (TierwiseError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    text = snippet(result, router if is_file else "router.npz")
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"wrote {out}")


def _calibrate(
    data: OutcomeTable | None,
    log: str | None,
    route: str | None,
    target: Target,
    router: str,
    models: tuple[str | None, str | None],
    folds: int,
    seed: int,
) -> Calibration:
    """Calibrate on the outcome table, or on the request log's re-routed prompts."""
    import numpy as np

    from tierwise.evaluation.calibrate import calibrate
    from tierwise.evaluation.replay import read_log

    rows = None
    if log is not None or data is None:
        table = read_log(log or "", route).table
        rows = np.arange(len(table), dtype=np.intp)
    else:
        table = data
    is_file = not router.startswith("learned:")
    return calibrate(
        table,
        target,
        spec=None if is_file else router,
        router_file=Path(router) if is_file else None,
        folds=folds,
        seed=seed,
        strong=models[0],
        cheap=models[1],
        rows=rows,
    )
