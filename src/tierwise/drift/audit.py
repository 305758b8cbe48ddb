"""The audit log of threshold changes: every proposal and every applied change, with
the old value, the new value and the evidence. Routers' thresholds change only from
config or from an applied entry here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from tierwise.store.base import Store
from tierwise.store.tables import CalibrationRow


@dataclass(frozen=True, slots=True)
class Calibration:
    route: str
    parameter: str
    old_value: float | None
    new_value: float
    applied: bool
    created_at: float
    evidence: dict[str, Any] = field(default_factory=dict)
    actor: str = ""
    calibration_id: str = field(default_factory=lambda: os.urandom(12).hex())


async def write_calibration(store: Store, entry: Calibration) -> None:
    evidence = orjson.dumps(entry.evidence, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    await store.add_calibration(
        CalibrationRow(
            calibration_id=entry.calibration_id,
            created_at=entry.created_at,
            route=entry.route,
            parameter=entry.parameter,
            old_value=entry.old_value,
            new_value=entry.new_value,
            applied=entry.applied,
            evidence=evidence,
            actor=entry.actor,
        )
    )


def _row(row: CalibrationRow) -> dict[str, Any]:
    return {**row, "evidence": orjson.loads(row["evidence"])}


async def read_calibrations(
    store: Store, route: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Newest first, optionally for one route."""
    return [_row(r) for r in await store.calibrations(route, limit)]


async def latest_applied(store: Store) -> dict[str, dict[str, Any]]:
    """Per route, the newest applied entry."""
    latest: dict[str, dict[str, Any]] = {}
    for row in await store.applied_calibrations():
        latest[row["route"]] = _row(row)
    return latest
