"""Every replica's half of recalibration: set each route's router parameter to the newest
applied entry of the audit log. Needs neither numpy nor scipy, so that a gateway without
drift checks still follows calibrations applied elsewhere."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tierwise.drift.audit import latest_applied
from tierwise.routing.base import Router
from tierwise.routing.tuning import Tunable
from tierwise.store.base import Store

if TYPE_CHECKING:
    from tierwise.gateway import Gateway

log = logging.getLogger("tierwise.drift")


def retune(router: Router | None, parameter: str, value: float) -> bool:
    """Set a router's tunable parameter; False when the router has no such parameter."""
    return isinstance(router, Tunable) and router.retune(parameter, value)


async def apply_calibrations(gateway: Gateway, store: Store) -> None:
    """Set each route's parameter to its newest applied calibration."""
    for route, row in (await latest_applied(store)).items():
        if route not in gateway.targets.names():
            continue
        router = gateway.targets.get(route).router
        if not retune(router, row["parameter"], float(row["new_value"])):
            log.debug("route %s: its router has no parameter %s", route, row["parameter"])
