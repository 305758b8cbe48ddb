"""The audit log of threshold changes: every proposal and every applied change, with
the old value, the new value and the evidence. Routers' thresholds change only from
config or from an applied entry here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from tierwise.store.base import Store

INSERT = (
    "INSERT INTO calibrations (calibration_id, created_at, route, parameter, old_value, "
    "new_value, applied, evidence, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT = (
    "SELECT calibration_id, created_at, route, parameter, old_value, new_value, applied, "
    "evidence, actor FROM calibrations"
)


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
    await store.execute(
        INSERT,
        (
            entry.calibration_id,
            entry.created_at,
            entry.route,
            entry.parameter,
            entry.old_value,
            entry.new_value,
            int(entry.applied),
            evidence,
            entry.actor,
        ),
    )


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "applied": bool(row["applied"]), "evidence": orjson.loads(row["evidence"])}


async def read_calibrations(
    store: Store, route: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Newest first, optionally for one route."""
    where, params = (" WHERE route = ?", [route]) if route else ("", [])
    rows = await store.query(f"{SELECT}{where} ORDER BY created_at DESC LIMIT {int(limit)}", params)
    return [_row(r) for r in rows]


async def latest_applied(store: Store) -> dict[str, dict[str, Any]]:
    """Per route, the newest applied entry."""
    rows = await store.query(f"{SELECT} WHERE applied = 1 ORDER BY created_at")
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["route"]] = _row(row)
    return latest
