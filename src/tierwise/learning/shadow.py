"""Shadow routers: a candidate router beside a route's live one, on live traffic.

`start_shadow` trains a candidate on the route's logged outcomes (as `learn` does),
stores its file and writes an audit entry (parameter `shadow`, not applied) naming
it; `stop_shadow` writes one that names no router. Each replica's `Shadows` follows
the newest `shadow` entry of every route and, as a record sink, asks the shadow
router for its decision on each finished request of that route in a background
task, after the answer has gone out: the answer, the request's plan and the calls
upstream are the live router's alone. The decisions are kept in the store
(`shadow_decisions`) for `shadow_report`.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.drift.audit import Calibration, read_calibrations, write_calibration
from tierwise.learning.serve import LearnOptions, keep_router, load_router
from tierwise.record import RequestRecord
from tierwise.routing.explore import SHADOW_ROUTER
from tierwise.store.base import Store
from tierwise.store.guard import StoreUnavailableError
from tierwise.types import ChatRequest, Message

if TYPE_CHECKING:
    from tierwise.config import GatewayConfig
    from tierwise.gateway import Gateway

log = logging.getLogger("tierwise.learning")
SHADOW = "shadow"
QUEUE_LIMIT = 10_000
BATCH = 200


async def shadow_entry(store: Store, route: str) -> dict[str, Any] | None:
    """The newest `shadow` audit entry of `route` (evidence decoded), if any."""
    for row in await read_calibrations(store, route, limit=500):
        if row["parameter"] == SHADOW:
            return row
    return None


async def shadow_of(store: Store, route: str) -> str | None:
    """The router id that shadows `route` now (None: no shadow)."""
    entry = await shadow_entry(store, route)
    return None if entry is None else entry["evidence"].get("router_id")


async def start_shadow(
    config: GatewayConfig,
    store: Store,
    route: str,
    now: float,
    options: LearnOptions,
    actor: str = "",
) -> dict[str, Any]:
    """Train a candidate on `route`'s traffic and run it as the route's shadow
    (whether or not it beats the live router on held-out requests)."""
    from tierwise.learning import loop
    from tierwise.learning.from_log import collect

    outcomes = await collect(store, now - options.since_s, route)
    settings = options.settings(config, route)
    result: dict[str, Any] = {"route": route, "labelled": loop.labelled_count(outcomes)}
    result["needed"] = settings.min_labelled
    problem = loop.shortage(outcomes, settings)
    if problem is not None:
        return {**result, "status": "too_little_data", "why": problem + "; nothing changed"}
    candidate = await asyncio.to_thread(loop.train_candidate, outcomes, settings)
    summary = loop.summary(candidate, result["labelled"])
    router_id = await keep_router(store, route, now, candidate.models, candidate.encoded(), summary)
    previous = await shadow_of(store, route)
    evidence = {"router_id": router_id, "replaced": previous, "mode": SHADOW}
    entry = Calibration(route, SHADOW, None, 0.0, False, now, evidence, actor)
    await write_calibration(store, entry)
    return {
        **result,
        "comparison": candidate.comparison,
        "status": "shadowing",
        "router_id": router_id,
        "calibration_id": entry.calibration_id,
    }


async def stop_shadow(store: Store, route: str, now: float, actor: str = "") -> dict[str, Any]:
    """Remove `route`'s shadow (an audited entry); unchanged when it has none."""
    current = await shadow_of(store, route)
    if current is None:
        return {"route": route, "status": "unchanged", "why": f"{route} has no shadow router"}
    evidence = {"router_id": None, "stopped": current, "mode": "stop"}
    entry = Calibration(route, SHADOW, None, 0.0, False, now, evidence, actor)
    await write_calibration(store, entry)
    return {
        "route": route,
        "status": "stopped",
        "router_id": current,
        "calibration_id": entry.calibration_id,
    }


class Shadows:
    """One replica's shadow routers. `sync` follows the audit log; `observe` is a
    record sink that queues each finished request of a shadowed route, and one
    background task asks the shadow router and keeps its decisions. A full queue
    drops requests (counted in `dropped`) rather than hold memory or the caller."""

    def __init__(self, gateway: Gateway, store: Store, directory: Path | None = None) -> None:
        self.store = store
        self.attach(gateway)
        self.directory = directory or Path(tempfile.gettempdir()) / "tierwise-learned"
        self.routers: dict[str, tuple[str, Any]] = {}
        self.dropped = 0
        self._queue: asyncio.Queue[tuple[RequestRecord, str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None

    def attach(self, gateway: Gateway) -> None:
        """Shadow `gateway`'s requests (the one a reload put in place)."""
        self.gateway = gateway
        if self.observe not in gateway.sinks:
            gateway.sinks.append(self.observe)

    async def sync(self, routes: Iterable[str] | None = None) -> list[str]:
        """Load each route's current shadow router; the routes that changed."""
        changed = []
        for route in routes if routes is not None else self.gateway.config.routes:
            want = await shadow_of(self.store, route)
            have = self.routers.get(route)
            if (have[0] if have else None) == want:
                continue
            router = None if want is None else await load_router(self.store, want, self.directory)
            if router is None:
                self.routers.pop(route, None)
            else:
                self.routers[route] = (want or "", router)
            changed.append(route)
        return changed

    def observe(self, record: RequestRecord) -> None:
        """The sink: queue `record` when a shadow router watches its route."""
        shadow = self.routers.get(record.route)
        decision = record.decision
        if shadow is None or decision is None or decision.router == SHADOW_ROUTER:
            return
        if record.prompt is None:
            return
        try:
            self._queue.put_nowait((record, *shadow))
        except asyncio.QueueFull:
            self.dropped += 1
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def flush(self) -> None:
        """Wait until every queued request has its shadow decision kept."""
        await self._queue.join()

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._decide(batch)
            except StoreUnavailableError:
                log.debug("shadow decisions for %d requests lost: store down", len(batch))
            except Exception:
                log.exception("shadow decisions for %d requests were lost", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _decide(self, batch: list[tuple[RequestRecord, str, Any]]) -> None:
        rows = []
        for record, router_id, router in batch:
            target = self.gateway.targets.get(record.route)
            request = ChatRequest([Message("user", record.prompt or "")], model=record.route)
            decision = await router.decide(request, [s.tier for s in target.steps])
            rows.append((record.request_id, router_id, decision.target, record.started_at))
        await self.store.add_shadow_decisions(rows)
