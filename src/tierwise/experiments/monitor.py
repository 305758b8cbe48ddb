"""The background loop of every gateway replica: experiment state from the store,
guardrails (stop and roll back to the control), drift checks and calibrations."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tierwise.experiments.log import read_events, write_event
from tierwise.experiments.state import Event
from tierwise.experiments.status import guardrail_verdicts
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
        self._next_drift = 0.0

    async def tick(self) -> dict[str, Any]:
        now = self.clock()
        self.gateway.experiments.reset(await read_events(self.store))
        stopped = await self.guardrails(now)
        drift = await self.drift(now)
        return {"stopped": stopped, "drift": drift}

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
