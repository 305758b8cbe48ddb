"""Live config reload: load and check the config file as `config check` does, build
a new Gateway from it, then swap it in. Requests already running finish on the old
Gateway, which is closed once the last of them has ended; a reload that fails keeps
the old config serving and says why.

What a reload keeps: the shared state (health, budgets, rate limits) when the
`state`, `budgets`, `rate_limits` and `fallback.breaker` sections are unchanged, and
the experiments' state when `experiments` is unchanged. Everything else (deployments,
their HTTP clients, routers, checks, cache, exploration) is built afresh.

`server.api_keys` and `server.admin_keys` are applied with the new Gateway: the
configured keys of the app's API and admin key rings are replaced in one assignment
each (the rings themselves stay, as the virtual keys, the dashboard and the admin API
hold them). Any other change to the `server` or `store` sections (address, body limit,
request log) takes effect on restart: the outcome's `restart_required` lists the
dotted paths that differ from the config the process started with (paths only, never
values), and a warning is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, SecretStr

from tierwise.config import GatewayConfig, load_config
from tierwise.errors import ConfigError, TierwiseError
from tierwise.gateway import Gateway, RecordSink
from tierwise.server.app import GATEWAY, KEYS, METRICS, Handler
from tierwise.server.auth import KeyRing

log = logging.getLogger("tierwise.server")
SwapHook = Callable[[Gateway], Awaitable[None]]
STATE_SECTIONS = ("state", "budgets", "rate_limits")
APPLIED_KEYS = frozenset({"server.api_keys", "server.admin_keys"})


def config_hash(config: GatewayConfig) -> str:
    """A digest of the effective config (file and environment overrides, secrets
    included), the same in every process that loaded the same settings."""
    data = config.model_dump(mode="python")
    raw = orjson.dumps(data, default=_plain, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def same_state(old: GatewayConfig, new: GatewayConfig) -> bool:
    """Whether the shared state built for `old` serves `new` unchanged."""
    return old.fallback.breaker == new.fallback.breaker and all(
        getattr(old, name) == getattr(new, name) for name in STATE_SECTIONS
    )


def restart_required(started: GatewayConfig, new: GatewayConfig) -> list[str]:
    """The dotted paths of the `server` and `store` settings that differ between the
    config the process started with and `new`, but the keys (a reload applies those)."""
    changed = _changed(started.server, new.server, "server")
    changed += _changed(started.store, new.store, "store")
    return sorted(path for path in changed if path not in APPLIED_KEYS)


def _changed(old: BaseModel, new: BaseModel, prefix: str) -> list[str]:
    paths = []
    for name in type(old).model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        path = f"{prefix}.{name}"
        if isinstance(before, BaseModel) and type(before) is type(after):
            paths.extend(_changed(before, after, path))
        else:
            paths.append(path)
    return paths


class InFlight:
    """Requests running, by the config generation they started under."""

    def __init__(self) -> None:
        self.generation = 0
        self._counts: Counter[int] = Counter()
        self._ended = asyncio.Event()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        generation = self.generation
        self._counts[generation] += 1
        try:
            yield
        finally:
            self._counts[generation] -= 1
            if not self._counts[generation]:
                del self._counts[generation]
            self._ended.set()

    def running(self, up_to: int) -> int:
        """Requests still running that started in generation `up_to` or before."""
        return sum(n for generation, n in self._counts.items() if generation <= up_to)

    async def drained(self, up_to: int) -> None:
        while self.running(up_to):
            self._ended.clear()
            await self._ended.wait()


class Reloader:
    """Reloads `path` into the app's Gateway; one reload at a time."""

    def __init__(
        self,
        app: web.Application,
        path: Path | None,
        config: GatewayConfig,
        own: list[RecordSink],
        host: str | None = None,
    ) -> None:
        self.app, self.path, self.started, self.host = app, path, config, host
        self.flight = InFlight()
        self.config_hash = config_hash(config)
        self.loaded_at = time.time()
        self.last: dict[str, Any] | None = None
        self.on_swap: list[SwapHook] = []
        self._own: dict[Gateway, list[RecordSink]] = {app[GATEWAY]: list(own)}
        self._retiring: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def status(self) -> dict[str, Any]:
        return {
            "config_hash": self.config_hash,
            "file": None if self.path is None else str(self.path),
            "loaded_at": self.loaded_at,
            "generation": self.flight.generation,
            "draining": len(self._retiring),
            "pid": os.getpid(),
            "last_reload": self.last,
        }

    async def reload(self, actor: str) -> dict[str, Any]:
        """Load, check and swap in the config file; the outcome, also logged."""
        async with self._lock:
            previous = self.config_hash
            try:
                outcome, later = await self._reload()
            except Exception as exc:
                reason = str(exc) if isinstance(exc, TierwiseError) else repr(exc)
                self.last = _outcome("failed", actor, previous, previous, reason, [])
                log.warning("config reload by %s failed, keeping %s: %s", actor, previous, reason)
                return self.last
            self.last = _outcome(outcome, actor, previous, self.config_hash, None, later)
            log.info(
                "config reload by %s: %s (%s -> %s)", actor, outcome, previous, self.config_hash
            )
            if later:
                log.warning("config reload by %s: restart to apply %s", actor, ", ".join(later))
            return self.last

    async def _reload(self) -> tuple[str, list[str]]:
        """The outcome, and the settings changed that wait for a restart."""
        if self.path is None:
            raise ConfigError("the server started without a config file: nothing to reload")
        config = await asyncio.to_thread(check_file, self.path)
        later = restart_required(self.started, config)
        digest = config_hash(config)
        if digest == self.config_hash:
            return "unchanged", later
        users, admins = self._rings(config)
        old = self.app[GATEWAY]
        new = await self._successor(old, config)
        self._swap(old, new)
        self._apply_keys(users, admins)
        self.config_hash, self.loaded_at = digest, time.time()
        return "reloaded", later

    def _rings(self, config: GatewayConfig) -> tuple[KeyRing, KeyRing]:
        """The configured API and admin keys of `config`, checked as at start."""
        server = config.server
        if self.host is not None:
            server = server.model_copy(update={"host": self.host})
        return KeyRing.from_config(server), KeyRing.from_entries(server.admin_keys)

    def _apply_keys(self, users: KeyRing, admins: KeyRing) -> None:
        """Swap the configured keys into the app's rings (virtual keys stay)."""
        ring = self.app[KEYS]
        ring.keys = users.keys
        if ring.admins is not None:
            ring.admins.keys = admins.keys
        self.app[METRICS].teams = {k.name: k.team for k in users.keys}

    async def _successor(self, old: Gateway, config: GatewayConfig) -> Gateway:
        """The new Gateway, warmed up and carrying the app's record sinks."""
        kept = old.state if same_state(old.config, config) else None
        new = Gateway(config, state=kept)
        own = list(new.sinks)
        new.sinks.extend(s for s in old.sinks if s not in self._own.get(old, []))
        if old.config.experiments == config.experiments:
            new.experiments = old.experiments
        try:
            await new.warm_up()
            for hook in self.on_swap:
                await hook(new)
        except BaseException:
            await new.aclose(keep_state=kept is not None)
            raise
        self._own[new] = own
        return new

    def _swap(self, old: Gateway, new: Gateway) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.app[GATEWAY] = new
        generation = self.flight.generation
        self.flight.generation += 1
        task = asyncio.get_running_loop().create_task(self._retire(old, new, generation))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, old: Gateway, new: Gateway, generation: int) -> None:
        await self.flight.drained(generation)
        self._own.pop(old, None)
        await old.aclose(keep_state=old.state is new.state)

    async def close(self) -> None:
        """Wait for the replaced Gateways to close (at shutdown, once the server has
        ended its requests)."""
        await asyncio.gather(*self._retiring)


def check_file(path: Path) -> GatewayConfig:
    """The config at `path`, checked as `config check` does (every deployment,
    route, router and check built); warnings are logged."""
    from tierwise.commands import check_config

    config = load_config(path)
    for warning in check_config(config, file=str(path)):
        log.warning("config %s: %s", path, warning)
    return config


def _outcome(
    status: str, actor: str, previous: str, active: str, error: str | None, later: list[str]
) -> dict[str, Any]:
    return {
        "status": status,
        "by": actor,
        "at": time.time(),
        "previous_hash": previous,
        "config_hash": active,
        "error": error,
        "restart_required": later,
    }


RELOADER: web.AppKey[Reloader] = web.AppKey("reloader", Reloader)


def add_reload(
    app: web.Application,
    path: Path | None,
    config: GatewayConfig,
    own: list[RecordSink],
    host: str | None = None,
) -> Reloader:
    """Count requests per config generation and make the app reloadable (before it
    starts). `own` are the record sinks the current Gateway made for itself; `host`
    the address served when it overrides `server.host` (reloaded keys are checked
    against it)."""
    reloader = Reloader(app, path, config, own, host)
    app[RELOADER] = reloader

    @web.middleware
    async def in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
        with reloader.flight.hold():
            return await handler(request)

    async def close(app: web.Application) -> None:
        await reloader.close()

    app.middlewares.append(in_flight)
    app.on_cleanup.insert(0, close)
    return reloader


def reload_on_sighup(app: web.Application) -> None:
    """Reload on SIGHUP while the app runs (the outcome is logged)."""

    async def install(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        reloader = app[RELOADER]
        tasks: set[asyncio.Task[dict[str, Any]]] = set()

        def on_signal() -> None:
            task = loop.create_task(reloader.reload("SIGHUP"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        loop.add_signal_handler(signal.SIGHUP, on_signal)

    app.on_startup.append(install)
