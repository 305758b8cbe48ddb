"""The background loop of every gateway replica: experiment state from the store,
guardrails (stop and roll back to the control), drift checks and calibrations."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tierwise.errors import TierwiseError
from tierwise.experiments.log import read_events, write_event
from tierwise.experiments.state import Event
from tierwise.experiments.status import guardrail_verdicts
from tierwise.learning.serve import LearnOptions, Mode, Swapper, learn_route
from tierwise.learning.shadow import Shadows
from tierwise.store.base import Store
from tierwise.store.guard import StoreUnavailableError

if TYPE_CHECKING:
    from tierwise.gateway import Gateway

log = logging.getLogger("tierwise.experiments")


class Monitor:
    """`tick()` once, or `run()` every `interval_s` until cancelled."""

    def __init__(
        self,
        gateway: Gateway,
        store: Store,
        *,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway, self.store, self.interval_s, self.clock = gateway, store, interval_s, clock
        self._next_drift = self._next_learn = 0.0
        self.learned = Swapper(gateway)
        self.shadows = Shadows(gateway, store)

    async def tick(self) -> dict[str, Any]:
        now = self.clock()
        experiments = self.gateway.experiments
        for _ in range(3):
            before = experiments.applied
            events = await read_events(self.store)
            swapped = await self.learned.sync(self.store, events)
            if experiments.applied == before:
                break
        experiments.reset(events)
        self.shadows.attach(self.gateway)
        shadowed = await self.shadows.sync()
        stopped = await self.guardrails(now)
        drift = await self.drift(now)
        learned = await self.learn(now)
        return {
            "stopped": stopped,
            "drift": drift,
            "swapped": swapped,
            "shadowed": shadowed,
            "learned": learned,
        }

    async def guardrails(self, now: float) -> list[Event]:
        """Roll back every running experiment a guardrail fired for."""
        stopped = []
        for state in self.gateway.experiments.states():
            if state.status != "running":
                continue
            found = await guardrail_verdicts(self.store, state.config, state.name)
            fired = [v for v in found if v.decision == "fire"]
            if not fired:
                continue
            event = Event(
                state.name,
                now,
                "rollback",
                None,
                state.config.control,
                fired[0].reason(),
                "guardrail",
            )
            await write_event(self.store, event)
            self.gateway.experiments.apply([event])
            log.warning(
                "experiment %s rolled back to %s: %s", state.name, event.serving, event.reason
            )
            stopped.append(event)
        return stopped

    async def drift(self, now: float) -> list[dict[str, Any]]:
        """Drift checks when enabled (numpy, imported only then); every applied calibration."""
        from tierwise.drift.apply import apply_calibrations

        settings = self.gateway.config.drift
        results = []
        if settings.enabled and now >= self._next_drift:
            from tierwise.drift.monitor import check_route

            self._next_drift = now + settings.interval_s
            for route in settings.routes:
                quiet = settings.interval_s / 2
                results.append(
                    await check_route(self.gateway, self.store, route, now, quiet_s=quiet)
                )
        await apply_calibrations(self.gateway, self.store)
        return results

    async def learn(self, now: float) -> list[dict[str, Any]]:
        """When the `learn` block is on and due, learn on each of its routes."""
        settings = self.gateway.config.learn
        if not settings.enabled or now < self._next_learn:
            return []
        self._next_learn = now + settings.interval_s
        results = []
        for route, own in settings.routes.items():
            options = LearnOptions(
                settings.since_s,
                own.min_labelled or settings.min_labelled,
                own.quality_target,
                settings.embedder,
                quiet_s=settings.interval_s / 2,
            )
            apply = settings.apply if own.apply is None else own.apply
            mode: Mode = "apply" if apply else "propose"
            try:
                result = await learn_route(
                    self.gateway.config, self.store, route, now, options, mode, "learn"
                )
            except (ImportError, ValueError, TierwiseError) as exc:
                result = {"route": route, "status": "failed", "why": str(exc)}
            log.info("learning on route %s: %s", route, result.get("why") or result["status"])
            results.append(result)
        return results

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except StoreUnavailableError:
                log.debug("monitor tick skipped: the request store is unreachable")
            except Exception:
                log.exception("monitor tick failed; next in %.0f s", self.interval_s)
            await asyncio.sleep(self.interval_s)
