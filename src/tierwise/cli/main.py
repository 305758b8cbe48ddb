"""The `tierwise` command: thin over the library."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tierwise.cli.cascade import eval_cascade_command
from tierwise.cli.common import ConfigOption, fail, load_cli_config
from tierwise.cli.drift import drift_app
from tierwise.cli.evaluation import calibrate_command, eval_command
from tierwise.cli.experiments import experiment_app
from tierwise.cli.keys import keys_app
from tierwise.cli.learn import learn_command
from tierwise.cli.learning import fit_examples_command, train_command
from tierwise.cli.outcomes import export_outcomes_command
from tierwise.cli.report import report_command
from tierwise.cli.simulate import simulate_command
from tierwise.errors import TierwiseError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Validate and inspect configuration.")
app.add_typer(config_app, name="config")


@app.command()
def chat(
    prompt: str,
    config: ConfigOption = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Route, tier or model.")] = "auto",
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 256,
) -> None:
    """Answer PROMPT through the gateway; print the answer and a route/cost line."""
    from tierwise.commands import run_chat

    try:
        answer, summary = asyncio.run(run_chat(load_cli_config(config), prompt, model, max_tokens))
    except TierwiseError as exc:
        raise fail(exc) from None
    typer.echo(answer)
    typer.echo(summary, err=True)


@app.command()
def route(
    prompt: str,
    config: ConfigOption = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Route, tier or model.")] = "auto",
    explain: Annotated[bool, typer.Option(help="Show scores, reason and the plan.")] = False,
    needs: Annotated[
        list[str] | None,
        typer.Option(help="Add what a capability takes: vision, audio, tools, json_schema."),
    ] = None,
) -> None:
    """Show where PROMPT would go, without calling any model."""
    from tierwise.commands import explain_route

    try:
        loaded = load_cli_config(config)
        typer.echo(asyncio.run(explain_route(loaded, prompt, model, explain, needs or [])))
    except TierwiseError as exc:
        raise fail(exc) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: config or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: config or 8080).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the port.")] = 1,
) -> None:
    """Run the OpenAI- and Anthropic-compatible gateway."""
    from tierwise.server.run import serve as run_server

    try:
        cfg = load_cli_config(config)
        env_path = os.environ.get("TIERWISE_CONFIG")
        path = config or (Path(env_path) if env_path else None)
        path = path.resolve() if path else None
        run_server(cfg, host or cfg.server.host, port or cfg.server.port, workers, path)
    except TierwiseError as exc:
        raise fail(exc) from None


@app.command()
def models(
    config: ConfigOption = None,
    verify: Annotated[bool, typer.Option(help="Check local model files (sha256).")] = False,
) -> None:
    """List deployments with tier, provider, prices and context window."""
    from tierwise.commands import describe_models, verify_local_models

    try:
        cfg = load_cli_config(config)
        typer.echo(describe_models(cfg))
        if verify:
            verify_local_models(cfg)
    except (TierwiseError, OSError) as exc:
        raise fail(exc) from None


@config_app.command("check")
def config_check(path: Path) -> None:
    """Validate a config file, building its routers and checks as the gateway would;
    print each route's plan, and a warning for each `env:` secret that is unset."""
    from tierwise.commands import check_config, describe_plans
    from tierwise.config import load_config

    try:
        config = load_config(path)
        warnings = check_config(config, file=str(path))
    except TierwiseError as exc:
        raise fail(exc) from None
    typer.echo(describe_plans(config))
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)


app.command("report")(report_command)
app.command("train")(train_command)
app.command("fit-examples")(fit_examples_command)
app.command("eval")(eval_command)
app.command("calibrate")(calibrate_command)
app.command("eval-cascade")(eval_cascade_command)
app.command("export-outcomes")(export_outcomes_command)
app.command("simulate")(simulate_command)
app.command("learn")(learn_command)
app.add_typer(experiment_app, name="experiment")
app.add_typer(drift_app, name="drift")
app.add_typer(keys_app, name="keys")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
