"""A small, fixed embedding of a sampled share of prompts, kept in the request log so
drift in what users ask can be measured across replicas and restarts."""

from __future__ import annotations

import random

from tierwise.embeddings.hashing import HashingEmbedder
from tierwise.record import RequestRecord

DIMENSION = 32
MAX_CHARS = 2000


class PromptSketcher:
    """A record sink: sets `prompt_sketch` on a `sample` share of records (signed
    hashed word and character n-grams in 32 dimensions, unit length)."""

    def __init__(self, sample: float, rng: random.Random | None = None) -> None:
        self.sample = sample
        self._rng = rng or random.Random()
        self._embedder = HashingEmbedder(DIMENSION)

    def __call__(self, record: RequestRecord) -> None:
        if not record.prompt or self._rng.random() >= self.sample:
            return
        vector = self._embedder.embed([record.prompt[:MAX_CHARS]])[0]
        record.prompt_sketch = [float(v) for v in vector]
