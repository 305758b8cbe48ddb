"""The semantic index: the last user message's embedding, per exact context.

A lookup embeds the last user message and takes the nearest stored message (cosine
similarity of unit vectors) among entries whose context key matches (the rest of
the conversation and every parameter); at or above the threshold it names that
entry's exact key. The index lives in the process; the answers it points to live in
the cache (memory or Redis), which owns their expiry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.base import Embedder

Vector = npt.NDArray[np.float32]


@dataclass(slots=True)
class _Context:
    keys: OrderedDict[str, tuple[float, Vector]] = field(default_factory=OrderedDict)
    matrix: Vector | None = None
    order: list[str] = field(default_factory=list)

    def stacked(self) -> tuple[list[str], Vector]:
        if self.matrix is None:
            self.order = list(self.keys)
            self.matrix = np.stack([self.keys[k][1] for k in self.order])
        return self.order, self.matrix


@dataclass(frozen=True, slots=True)
class Match:
    key: str
    similarity: float


class SemanticIndex:
    """Nearest neighbours by cosine similarity, at most `max_entries` in all."""

    def __init__(
        self,
        embedder: Embedder,
        threshold: float,
        *,
        max_entries: int = 10_000,
        now: Callable[[], float],
    ) -> None:
        self.embedder, self.threshold = embedder, threshold
        self.max_entries, self._now = max_entries, now
        self._contexts: dict[str, _Context] = {}
        self._all: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._all)

    def embed(self, text: str) -> Vector:
        vector: Vector = self.embedder.embed([text])[0]
        return vector

    def nearest(self, context: str, vector: Vector) -> Match | None:
        """The closest live entry at or above the threshold, if any."""
        found = self._contexts.get(context)
        if found is None or not found.keys:
            return None
        self._drop_expired(context, found)
        if not found.keys:
            return None
        order, matrix = found.stacked()
        scores = matrix @ vector
        best = int(np.argmax(scores))
        similarity = float(scores[best])
        return Match(order[best], similarity) if similarity >= self.threshold else None

    def add(self, context: str, key: str, vector: Vector, ttl_s: float) -> None:
        entry = self._contexts.setdefault(context, _Context())
        entry.keys[key] = (self._now() + ttl_s, vector)
        entry.matrix = None
        self._all[key] = context
        self._all.move_to_end(key)
        while len(self._all) > self.max_entries:
            old, where = self._all.popitem(last=False)
            self._forget(where, old)

    def _forget(self, context: str, key: str) -> None:
        entry = self._contexts.get(context)
        if entry is None or entry.keys.pop(key, None) is None:
            return
        entry.matrix = None
        if not entry.keys:
            del self._contexts[context]

    def _drop_expired(self, context: str, entry: _Context) -> None:
        now = self._now()
        for key in [k for k, (expires, _) in entry.keys.items() if expires <= now]:
            self._all.pop(key, None)
            self._forget(context, key)
