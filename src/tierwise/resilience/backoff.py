"""Retry delays: exponential backoff with full jitter, honouring Retry-After."""

from __future__ import annotations

import random

from tierwise.config import BackoffConfig


def retry_delay_s(
    config: BackoffConfig, retry_number: int, retry_after_s: float | None, rng: random.Random
) -> float | None:
    """Seconds to wait before retry `retry_number` (0-based), or None when the
    provider asks for a longer wait than `max_retry_after_s` allows."""
    if retry_after_s is not None and retry_after_s > config.max_retry_after_s:
        return None
    ceiling = min(config.max_s, config.base_s * (2 ** min(retry_number, 32)))
    jittered = rng.uniform(0, ceiling)
    return max(jittered, retry_after_s or 0.0)
