"""`/admin/...`: experiments, threshold calibrations and config reloads, behind their
own keys.

Admin keys (`server.admin_keys`) are separate from API keys: an API key never opens
an admin endpoint. Without admin keys the admin API is closed, wherever the caller
connects from (every client of a same-host reverse proxy arrives from loopback);
`server.allow_unauthenticated_admin: true` opens it without a key, with a warning
logged at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from tierwise.errors import AccessError, ConfigError, RequestError, TierwiseError
from tierwise.experiments.judge import Judge
from tierwise.experiments.log import read_events, write_event
from tierwise.experiments.monitor import Monitor
from tierwise.experiments.spec import ExperimentConfig
from tierwise.experiments.state import Event, Experiments, ExperimentState
from tierwise.exploration_grade import keep_verdicts
from tierwise.gateway import Gateway
from tierwise.server.app import GATEWAY, KEYS, WRITER, json_response, read_body
from tierwise.server.auth import KeyRing
from tierwise.server.key_limits import KeyLimits
from tierwise.server.reload import RELOADER, Reloader
from tierwise.server.virtual_keys import (
    KeyRefresher,
    audit_json,
    create_key,
    public,
    revoke_key,
    rotate_key,
    spec_from_body,
)
from tierwise.store.base import Store
from tierwise.store.guard import GuardedStore, guarded_store

log = logging.getLogger("tierwise.server")
ADMIN_KEYS: web.AppKey[KeyRing] = web.AppKey("admin_keys", KeyRing)
ADMIN_OPEN: web.AppKey[bool] = web.AppKey("admin_open", bool)
INTERVAL: web.AppKey[float] = web.AppKey("monitor_interval_s", float)
MONITOR: web.AppKey[Monitor] = web.AppKey("monitor", Monitor)
TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("monitor_task", asyncio.Task)
JUDGE: web.AppKey[Judge] = web.AppKey("judge", Judge)
REFRESHER: web.AppKey[KeyRefresher] = web.AppKey("key_refresher", KeyRefresher)
KEY_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("key_task", asyncio.Task)


async def _start_monitor(app: web.Application) -> None:
    writer = app[WRITER]
    if writer is None:
        return
    gateway = app[GATEWAY]
    store = GuardedStore(writer, "the experiment monitor")
    app[MONITOR] = Monitor(gateway, store, interval_s=app[INTERVAL])
    app[JUDGE] = Judge(gateway, writer.store)
    gateway.sinks.append(app[JUDGE])
    gateway.exploration.keep_verdict = keep_verdicts(writer.store)
    app[TASK] = asyncio.get_running_loop().create_task(app[MONITOR].run())
    reloader = app.get(RELOADER)
    if reloader is not None:
        reloader.on_swap.append(functools.partial(_follow, app))


async def _follow(app: web.Application, gateway: Gateway) -> None:
    """Point the monitor, the judge and exploration's verdicts at a reloaded Gateway,
    serving the learned routers and experiment events the store holds."""
    from tierwise.learning.serve import Swapper

    monitor, learned = app[MONITOR], Swapper(gateway)
    try:
        events = await read_events(monitor.store)
        await learned.sync(monitor.store, events)
        gateway.experiments.reset(events)
    except TierwiseError as exc:
        log.warning("reload: the store could not be read, the monitor catches up: %s", exc)
    monitor.gateway, monitor.learned = gateway, learned
    app[JUDGE].gateway = gateway
    gateway.exploration.keep_verdict = keep_verdicts(app[JUDGE].store)


async def _start_key_refresh(app: web.Application) -> None:
    """Reload the store's virtual keys into the API key ring every
    `server.key_refresh_s`, on every replica."""
    writer = app[WRITER]
    if writer is None:
        return
    interval = app[GATEWAY].config.server.key_refresh_s
    refresher = KeyRefresher(app[KEYS], writer.store, interval, KeyLimits(lambda: app[GATEWAY]))
    app[REFRESHER] = refresher
    app[KEY_TASK] = asyncio.get_running_loop().create_task(refresher.run())


async def _stop_monitor(app: web.Application) -> None:
    for key in (TASK, KEY_TASK):
        task = app.get(key)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    judge = app.get(JUDGE)
    if judge is not None:
        await judge.aclose()
    monitor = app.get(MONITOR)
    if monitor is not None:
        await monitor.shadows.aclose()


def add_admin_routes(
    app: web.Application,
    keys: KeyRing,
    *,
    open_without_key: bool = False,
    monitor_interval_s: float = 10.0,
) -> None:
    """Mount the admin API, and run the monitor while the app runs with a store.
    With no admin `keys` the API refuses every call unless `open_without_key`."""
    app[ADMIN_KEYS], app[ADMIN_OPEN], app[INTERVAL] = keys, open_without_key, monitor_interval_s
    if open_without_key and not keys.keys:
        log.warning(
            "ADMIN API OPEN WITHOUT A KEY (server.allow_unauthenticated_admin): anyone who "
            "can reach this server can start experiments and change routing"
        )
    app.on_startup.append(_start_monitor)
    app.on_startup.append(_start_key_refresh)
    app.on_shutdown.append(_stop_monitor)
    app.router.add_get("/admin/experiments", list_experiments)
    app.router.add_post("/admin/experiments", create_experiment)
    app.router.add_get("/admin/experiments/{name}", experiment_status)
    app.router.add_post("/admin/experiments/{name}/stop", stop_experiment)
    app.router.add_post("/admin/experiments/{name}/start", start_experiment)
    app.router.add_get("/admin/calibrations", list_calibrations)
    app.router.add_post("/admin/drift/{route}", check_drift)
    app.router.add_get("/admin/keys", list_keys)
    app.router.add_post("/admin/keys", create_virtual_key)
    app.router.add_get("/admin/keys/events", key_events)
    app.router.add_post("/admin/keys/{name}/revoke", revoke_virtual_key)
    app.router.add_post("/admin/keys/{name}/rotate", rotate_virtual_key)
    app.router.add_post("/admin/reload", reload_config)
    app.router.add_get("/admin/config", config_status)


def admin(request: web.Request) -> str:
    """The admin key's name (`unauthenticated` when the API was opened without
    keys); raises AccessError otherwise. An API key is never an admin key."""
    keys = request.app[ADMIN_KEYS]
    if not keys.keys:
        if request.app[ADMIN_OPEN]:
            return "unauthenticated"
        raise AccessError(
            "the admin API is closed: set server.admin_keys and send one as "
            "'Authorization: Bearer <admin key>'",
            status=403,
        )
    try:
        key = keys.authenticate(request.headers)
    except AccessError:
        if _is_api_key(request):
            raise AccessError("an API key is not an admin key", status=403) from None
        raise
    return key.name if key else "admin"


def _is_api_key(request: web.Request) -> bool:
    users = request.app[KEYS]
    if not users.keys:
        return False
    try:
        return users.authenticate(request.headers) is not None
    except AccessError:
        return False


def store_of(request: web.Request) -> Store:
    return guarded_store(request.app[WRITER], "the admin API")


async def list_experiments(request: web.Request) -> web.Response:
    admin(request)
    states = request.app[GATEWAY].experiments.states()
    return json_response({"data": [_state_json(s) for s in states]})


def _state_json(state: ExperimentState) -> dict[str, Any]:
    return {
        **state.overview(),
        "updated_at": state.updated_at or None,
        "definition": state.config.model_dump(mode="json"),
    }


async def create_experiment(request: web.Request) -> web.Response:
    actor = admin(request)
    body = await read_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise RequestError("body must be an object with a 'name' and the experiment's fields")
    name = body.pop("name")
    try:
        definition = ExperimentConfig.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise RequestError(f"{where}: {first['msg']}", param=where) from None
    gateway = request.app[GATEWAY]
    for target in definition.targets():
        if target not in gateway.targets.names():
            raise RequestError(f"unknown route, tier or deployment {target!r}", param="route")
    _check_free(gateway.experiments, name, definition.route)
    event = Event(name, time.time(), "create", definition, None, "created over the API", actor)
    await _record(request, event)
    return json_response(_state_json(gateway.experiments.get(name)), status=201)


def _check_free(experiments: Experiments, name: str, route: str) -> None:
    current = experiments.find(name)
    if current is not None and current.status == "running":
        raise RequestError(f"experiment {name!r} is already running", status=409)
    problem = experiments.conflict(name, route)
    if problem is not None:
        raise RequestError(problem, status=409)


async def _record(request: web.Request, event: Event) -> None:
    await write_event(store_of(request), event)
    request.app[GATEWAY].experiments.apply([event])


def _known(request: web.Request) -> Any:
    try:
        return request.app[GATEWAY].experiments.get(request.match_info["name"])
    except ConfigError as exc:
        raise RequestError(exc.problem, status=404) from None


async def stop_experiment(request: web.Request) -> web.Response:
    actor = admin(request)
    state = _known(request)
    body = await read_body(request) if request.can_read_body else {}
    body = body if isinstance(body, dict) else {}
    serving = body.get("serving", state.config.control)
    if serving is not None and serving not in state.config.variants:
        raise RequestError(
            f"serving must be one of {sorted(state.config.variants)} or null", param="serving"
        )
    reason = str(body.get("reason") or "stopped over the API")
    await _record(request, Event(state.name, time.time(), "stop", None, serving, reason, actor))
    return json_response(_state_json(_known(request)))


async def start_experiment(request: web.Request) -> web.Response:
    actor = admin(request)
    state = _known(request)
    _check_free(request.app[GATEWAY].experiments, state.name, state.config.route)
    await _record(request, Event(state.name, time.time(), "start", None, None, "started", actor))
    return json_response(_state_json(_known(request)))


async def experiment_status(request: web.Request) -> web.Response:
    from tierwise.experiments.status import experiment_report

    admin(request)
    state = _known(request)
    resamples = request.query.get("bootstrap", "0")
    if not resamples.isdigit() or int(resamples) > 20_000:
        raise RequestError("bootstrap must be a whole number up to 20000", param="bootstrap")
    report = await experiment_report(store_of(request), state, time.time(), int(resamples))
    return json_response(report)


async def list_calibrations(request: web.Request) -> web.Response:
    from tierwise.drift.audit import read_calibrations

    admin(request)
    route = request.query.get("route")
    rows = await read_calibrations(store_of(request), route)
    return json_response({"data": rows})


async def check_drift(request: web.Request) -> web.Response:
    from tierwise.drift.monitor import check_route

    actor = admin(request)
    route = request.match_info["route"]
    gateway = request.app[GATEWAY]
    if route not in gateway.config.drift.routes:
        raise RequestError(f"route {route!r} has no drift settings (drift.routes)", status=404)
    result = await check_route(gateway, store_of(request), route, time.time(), actor=actor)
    return json_response(result)


def _reloader(request: web.Request) -> Reloader:
    reloader = request.app.get(RELOADER)
    if reloader is None:
        raise RequestError("this server does not reload its config", status=404)
    return reloader


async def config_status(request: web.Request) -> web.Response:
    """The active config's hash, file, load time and the last reload's outcome."""
    admin(request)
    return json_response(_reloader(request).status())


async def reload_config(request: web.Request) -> web.Response:
    """Load, check and swap in the config file; 400 with the reason when it fails
    (the old config keeps serving)."""
    actor = admin(request)
    outcome = await _reloader(request).reload(actor)
    if outcome["status"] == "failed":
        raise RequestError(
            f"config reload failed, still serving config {outcome['config_hash']}: "
            f"{outcome['error']}",
            status=400,
        )
    return json_response(outcome)


async def list_keys(request: web.Request) -> web.Response:
    """Virtual keys without secrets (`?revoked=true`: revoked ones too)."""
    admin(request)
    revoked = request.query.get("revoked", "").lower() in ("1", "true", "yes")
    rows = await store_of(request).virtual_keys(revoked=revoked)
    return json_response({"data": [public(r) for r in rows]})


async def create_virtual_key(request: web.Request) -> web.Response:
    """A new virtual key; its secret is in the answer's `key`, and nowhere else."""
    actor = admin(request)
    spec = spec_from_body(await read_body(request))
    taken = {k.name for k in request.app[KEYS].keys}
    secret, described = await create_key(store_of(request), spec, actor, time.time(), taken)
    await _refresh_keys(request)
    return json_response({**described, "key": secret}, status=201)


async def revoke_virtual_key(request: web.Request) -> web.Response:
    actor = admin(request)
    name = request.match_info["name"]
    await revoke_key(store_of(request), name, actor, time.time())
    await _refresh_keys(request)
    return json_response({"name": name, "revoked": True})


async def rotate_virtual_key(request: web.Request) -> web.Response:
    """A new secret for the key (in `key`); the old one stops working."""
    actor = admin(request)
    name = request.match_info["name"]
    secret = await rotate_key(store_of(request), name, actor, time.time())
    await _refresh_keys(request)
    return json_response({"name": name, "key": secret, "prefix": secret[:8]})


async def key_events(request: web.Request) -> web.Response:
    """The key audit log, newest first (`?name=`: one key's)."""
    admin(request)
    rows = await store_of(request).key_events(request.query.get("name"))
    return json_response({"data": [audit_json(r) for r in rows]})


async def _refresh_keys(request: web.Request) -> None:
    """Apply a change on this replica at once; others follow within their interval."""
    refresher = request.app.get(REFRESHER)
    if refresher is not None:
        with contextlib.suppress(Exception):
            await refresher.refresh()
