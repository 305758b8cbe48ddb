"""Run the gateway server: one process, or several sharing a port."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tierwise.config import GatewayConfig, StoreConfig
from tierwise.errors import ConfigError
from tierwise.gateway import Gateway
from tierwise.observability.tracing import RecordTracer, servers_of
from tierwise.server.admin import add_admin_routes
from tierwise.server.app import create_app
from tierwise.server.auth import KeyRing
from tierwise.server.reload import add_reload, reload_on_sighup
from tierwise.store import Capture, RecordWriter, open_store

OTLP_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True, slots=True)
class Running:
    base_url: str
    app: web.Application


def build(
    config: GatewayConfig,
    host: str | None = None,
    path: Path | None = None,
    rng: random.Random | None = None,
) -> web.Application:
    """The app for `config`; `path` is the file a reload reads again; `rng` the
    gateway's random source (exploration, balancing: seeded for reruns). The admin
    ring is also the API ring's `admins` (for `/metrics` and the dashboard)."""
    server = config.server if host is None else config.server.model_copy(update={"host": host})
    keys = KeyRing.from_config(server)
    admins = keys.admins = KeyRing.from_entries(server.admin_keys)
    gateway = Gateway(config, rng=rng)
    own_sinks = list(gateway.sinks)
    app = create_app(
        gateway,
        keys,
        max_body_bytes=server.max_body_bytes,
        writer=build_writer(config.store),
    )
    add_admin_routes(
        app,
        admins,
        open_without_key=server.allow_unauthenticated_admin,
        monitor_interval_s=server.monitor_interval_s,
    )
    add_reload(app, path, config, own_sinks, host=host)
    tracer = build_tracer(config)
    if tracer is not None:
        add_tracer(app, gateway, tracer)
    return app


def build_tracer(config: GatewayConfig) -> RecordTracer | None:
    """The OTLP exporter, when `telemetry.otlp_endpoint` or the standard OpenTelemetry
    endpoint variables are set; OpenTelemetry is imported only then."""
    endpoint = config.telemetry.otlp_endpoint
    if endpoint is None and not any(os.environ.get(name) for name in OTLP_ENV):
        return None
    try:
        return RecordTracer.otlp(endpoint, config.telemetry.service_name, servers_of(config))
    except ImportError as exc:
        raise ConfigError(
            f"trace export needs the otel extra (pip install 'tierwise[otel]'): {exc}",
            key="telemetry.otlp_endpoint",
        ) from None


def add_tracer(app: web.Application, gateway: Gateway, tracer: RecordTracer) -> None:
    """Trace every finished request; flush and stop the exporter on cleanup."""
    gateway.sinks.append(tracer.observe)

    async def shutdown(app: web.Application) -> None:
        await asyncio.to_thread(tracer.shutdown)

    app.on_cleanup.append(shutdown)


def build_writer(config: StoreConfig) -> RecordWriter | None:
    if not config.enabled:
        return None
    capture = Capture.with_patterns(
        config.redact_patterns,
        prompts=config.capture_prompts,
        answers=config.capture_answers,
        max_chars=config.max_text_chars,
    )
    return RecordWriter(
        open_store(config.resolved_url(), capture),
        batch_size=config.batch_size,
        interval_s=config.flush_interval_s,
        retention_days=config.retention_days,
    )


@asynccontextmanager
async def running(
    config: GatewayConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    path: Path | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Running]:
    """The server on a real socket for the duration of the block (tests, embedding);
    `path` is the config file `POST /admin/reload` reads, `rng` as for `build`."""
    app = build(config, host, path, rng)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield Running(f"http://{host}:{bound}", app)
    finally:
        await runner.cleanup()


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(
    config: GatewayConfig, host: str, port: int, workers: int = 1, path: Path | None = None
) -> None:
    """Serve until interrupted; `workers` > 1 runs processes sharing the port.
    SIGHUP reloads `path` (in every worker)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if workers <= 1:
        _serve_one(config, host, port, False, path)
        return
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_one, args=(config, host, port, True, path))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()

    def stop(signum: int, frame: object) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    def reload(signum: int, frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    for process in processes:
        process.join()


def _serve_one(
    config: GatewayConfig, host: str, port: int, reuse_port: bool, path: Path | None = None
) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _install_uvloop()
    app = build(config, host, path)
    reload_on_sighup(app)
    names = ", ".join(app_names(config))
    print(
        f"tierwise gateway on http://{host}:{port} (models: {names})", file=sys.stderr, flush=True
    )
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=None,
        print=None,
        reuse_port=reuse_port,
        handle_signals=True,
    )


def app_names(config: GatewayConfig) -> list[str]:
    return [*config.routes, *config.tiers, *config.deployments]
