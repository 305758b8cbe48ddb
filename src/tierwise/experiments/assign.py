"""Sticky, deterministic assignment of a unit (user, session, key, request) to a variant.

The bucket is SHA-256 of the experiment name and the unit, so every process and
replica puts a unit in the same variant without sharing any state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tierwise.types import ChatRequest

SCALE = float(1 << 64)
SESSION_KEY = "session_id"


def bucket(experiment: str, unit: str) -> float:
    """A uniform number in [0, 1) fixed by the experiment and the unit."""
    digest = hashlib.sha256(f"{experiment}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / SCALE


def pick(point: float, variants: Sequence[tuple[str, float]]) -> str:
    """The variant whose share of [0, 1) (by weight, in the given order) holds `point`."""
    total = sum(weight for _, weight in variants)
    edge = 0.0
    for name, weight in variants:
        edge += weight / total
        if point < edge:
            return name
    return variants[-1][0]


def assign(experiment: str, unit: str, variants: Sequence[tuple[str, float]]) -> str:
    return pick(bucket(experiment, unit), variants)


def unit_of(
    unit: str,
    request: ChatRequest,
    caller: str | None,
    request_id: str,
    user: str | None = None,
) -> str | None:
    """The value the experiment assigns by; None when the request does not carry it.
    `user` is the user the request is logged under (its own, else its API key's)."""
    if unit == "user":
        return user or request.user or None
    if unit == "session":
        return request.metadata.get(SESSION_KEY) or None
    if unit == "api_key":
        return caller
    return request_id
