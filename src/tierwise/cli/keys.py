"""`tierwise keys ...`: create, list, revoke and rotate virtual API keys directly in
the store; every running gateway on that store picks a change up within
`server.key_refresh_s`."""

from __future__ import annotations

import getpass
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierwise.cli.common import ConfigOption, JsonOption, print_result, run_with_store

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.store.base import Store

keys_app = typer.Typer(no_args_is_help=True, help="Virtual API keys kept in the store.")
ActorOption = Annotated[
    str | None, typer.Option("--actor", help="Who is making the change (default: cli:$USER).")
]


def _actor(given: str | None) -> str:
    if given:
        return given
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@keys_app.command("create")
def create(
    name: str,
    team: Annotated[str | None, typer.Option(help="Team whose budget it spends in.")] = None,
    user: Annotated[str | None, typer.Option(help="Person the key belongs to.")] = None,
    route: Annotated[list[str] | None, typer.Option(help="An allowed route (repeat).")] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="An allowed tier or deployment (repeat).")
    ] = None,
    budget_usd: Annotated[str | None, typer.Option(help="The key's own budget.")] = None,
    budget_period: Annotated[str, typer.Option(help="minute, hour, day or month.")] = "day",
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    actor: ActorOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create key NAME and print its secret (shown only this once)."""
    from tierwise.server.virtual_keys import KeySpec, create_key, parse_usd

    async def work(loaded: GatewayConfig, store: Store) -> dict[str, Any]:
        spec = KeySpec(
            name,
            team,
            user,
            tuple(route) if route else None,
            tuple(model) if model else None,
            parse_usd(budget_usd),
            budget_period,
            rpm,
            tpm,
        )
        taken = {k.name for k in loaded.server.api_keys}
        secret, described = await create_key(store, spec, _actor(actor), time.time(), taken)
        return {**described, "key": secret}

    print_result(run_with_store(config, work), json_output, _secret_text)


def _secret_text(data: dict[str, Any]) -> str:
    return f"{data['key']}\n(key {data['name']!r}: this secret is shown only once)"


@keys_app.command("list")
def list_keys(
    revoked: Annotated[bool, typer.Option(help="Include revoked keys.")] = False,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """The virtual keys, without their secrets."""
    from tierwise.server.virtual_keys import public

    async def work(loaded: GatewayConfig, store: Store) -> list[dict[str, Any]]:
        return [public(r) for r in await store.virtual_keys(revoked=revoked)]

    print_result(run_with_store(config, work), json_output, _list_text)


def _list_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no virtual keys"
    return "\n".join(
        f"{r['name']} {r['prefix']}... team={r['team'] or '-'} user={r['user'] or '-'} "
        f"routes={','.join(r['routes'] or []) or '*'} models={','.join(r['models'] or []) or '*'} "
        f"budget={r['budget_usd'] or '-'}/{r['budget_period'] or '-'} "
        f"rpm={r['rpm'] or '-'} tpm={r['tpm'] or '-'}" + (" REVOKED" if r["revoked_at"] else "")
        for r in rows
    )


@keys_app.command("revoke")
def revoke(name: str, actor: ActorOption = None, config: ConfigOption = None) -> None:
    """Revoke key NAME; gateways refuse it within their refresh interval."""
    from tierwise.server.virtual_keys import revoke_key

    async def work(loaded: GatewayConfig, store: Store) -> None:
        await revoke_key(store, name, _actor(actor), time.time())

    run_with_store(config, work)
    typer.echo(f"revoked {name}")


@keys_app.command("rotate")
def rotate(
    name: str,
    actor: ActorOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Give key NAME a new secret (printed once); the old one stops working."""
    from tierwise.server.virtual_keys import rotate_key

    async def work(loaded: GatewayConfig, store: Store) -> dict[str, Any]:
        return {"name": name, "key": await rotate_key(store, name, _actor(actor), time.time())}

    print_result(run_with_store(config, work), json_output, _secret_text)


@keys_app.command("log")
def audit_log(
    name: Annotated[str | None, typer.Option(help="Only this key.")] = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """The key audit log, newest first."""
    from tierwise.server.virtual_keys import audit_json

    async def work(loaded: GatewayConfig, store: Store) -> list[dict[str, Any]]:
        return [audit_json(e) for e in await store.key_events(name)]

    print_result(run_with_store(config, work), json_output, _log_text)


def _log_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no key changes"
    return "\n".join(
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['created_at']))}Z "
        f"{r['action']} {r['name']} by {r['actor']}"
        for r in rows
    )
