"""Order the deployments of one tier for a request."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tierwise.config import Balancing


@dataclass(slots=True, frozen=True)
class Candidate:
    name: str
    weight: float
    latency_ms: float | None
    in_flight: int


def order_candidates(
    candidates: Sequence[Candidate], strategy: Balancing, rng: random.Random
) -> list[str]:
    """Names in the order to try them; ties and weights are broken with `rng`."""
    if len(candidates) <= 1:
        return [c.name for c in candidates]
    keys = {c.name: _weighted_key(c.weight, rng) for c in candidates}
    if strategy is Balancing.LOWEST_LATENCY:
        ranked = sorted(candidates, key=lambda c: (c.latency_ms or 0.0, -keys[c.name]))
    elif strategy is Balancing.LEAST_BUSY:
        ranked = sorted(candidates, key=lambda c: (c.in_flight, -keys[c.name]))
    else:
        ranked = sorted(candidates, key=lambda c: -keys[c.name])
    return [c.name for c in ranked]


def _weighted_key(weight: float, rng: random.Random) -> float:
    """Efraimidis-Spirakis key: sorting by it samples without replacement by weight."""
    draw = rng.random() or 1e-12
    return math.log(draw) / weight
