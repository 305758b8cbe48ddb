"""`tierwise simulate`: run the learning loop end to end on an outcome table (see
`tierwise.learning.simulate`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.common import fail, need_extra


def simulate_command(
    outcomes: Annotated[Path, typer.Argument(help="Outcome-table CSV (scores and costs).")],
    answers: Annotated[
        Path, typer.Option(help="Answers CSV: prompt_id and response__<model> columns.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs.")],
    requests: Annotated[int, typer.Option(help="Requests to send.", min=1)] = 3000,
    explore: Annotated[
        float, typer.Option(help="Share of requests started on a random tier.", min=0, max=1)
    ] = 0.1,
    every: Annotated[int, typer.Option(help="Run the learn step every N requests.", min=1)] = (250),
    models: Annotated[
        str | None, typer.Option(help="Comma-separated model columns to route among.")
    ] = None,
    test_share: Annotated[
        float, typer.Option(help="Share of prompts held out for measuring.", min=0.05, max=0.5)
    ] = 0.2,
    judge_share: Annotated[
        float,
        typer.Option(help="Share of unexplored answers the judge grades.", min=0, max=1),
    ] = 0.1,
    max_spend_share: Annotated[
        float,
        typer.Option(help="Exploration and judging stop at this share of the route's spend."),
    ] = 0.05,
    router: Annotated[str, typer.Option(help="The router the route starts on.")] = "pretrained",
    min_labelled: Annotated[int, typer.Option(help="Least labelled requests to learn.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed for the split and the draws.")] = 0,
) -> None:
    """Start a real gateway in front of a fake upstream that plays each model's
    recorded answers, with a judge that reads the recorded scores; send REQUESTS
    prompts drawn from the table with exploration and the learn step on; write the
    learning curve (CSV and PNG), the final learned router (router.npz, for `tierwise
    eval TEST --router`), the held-out prompts (test.csv) and summary.json to OUT."""
    need_extra("tierwise simulate")
    from tierwise.errors import TierwiseError
    from tierwise.learning.sim_report import summary_text
    from tierwise.learning.simulate import Spec, simulate

    spec = Spec(
        outcomes,
        answers,
        out,
        requests=requests,
        explore=explore,
        every=every,
        models=tuple(m.strip() for m in (models or "").split(",") if m.strip()),
        test_share=test_share,
        judge_share=judge_share,
        max_spend_share=max_spend_share,
        router=router,
        min_labelled=min_labelled,
        seed=seed,
    )
    try:
        result = asyncio.run(simulate(spec))
    except (TierwiseError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(summary_text(result))
    typer.echo(f"written to {out}")
