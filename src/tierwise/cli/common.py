"""What every `tierwise` subcommand shares: the config option, loading the config,
and failing with one line on stderr."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.store.base import Store

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config; default: $TIERWISE_CONFIG or embedded."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def load_cli_config(path: Path | None) -> GatewayConfig:
    """The config at `path`, else at $TIERWISE_CONFIG, else the embedded default."""
    from tierwise.config import load_config

    chosen = path or (
        Path(os.environ["TIERWISE_CONFIG"]) if "TIERWISE_CONFIG" in os.environ else None
    )
    if chosen is None:
        from tierwise.defaults import embedded_config

        return embedded_config()
    return load_config(chosen)


def fail(problem: Exception | str) -> typer.Exit:
    """Print `error: problem` on stderr; raise the returned exit (status 1)."""
    typer.echo(f"error: {problem}", err=True)
    return typer.Exit(code=1)


def need_extra(command: str) -> None:
    """Exit naming the `eval` extra when the offline tooling's libraries are missing."""
    from tierwise.extras import OFFLINE, missing

    if absent := missing(OFFLINE):
        from tierwise.errors import MissingExtraError

        raise fail(str(MissingExtraError(command, "eval", absent)))


def run_with_store(config: Path | None, work: Callable[[GatewayConfig, Store], Awaitable[T]]) -> T:
    """Run `work` with the loaded config and its migrated store; errors exit with one line."""
    from tierwise.errors import TierwiseError
    from tierwise.store import migrated

    try:
        loaded = load_cli_config(config)
    except TierwiseError as exc:
        raise fail(exc) from None

    async def go() -> T:
        async with migrated(loaded.store.resolved_url()) as store:
            return await work(loaded, store)

    try:
        return asyncio.run(go())
    except TierwiseError as exc:
        raise fail(exc) from None


def print_result(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """`data` as indented JSON, or as `text(data)`."""
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(text(data))
