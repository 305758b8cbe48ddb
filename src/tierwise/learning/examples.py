"""Example utterances for the embedding router, chosen from outcome data.

A prompt is a cheap-tier example when the cheap model answered it well, and a
strong-tier example when the cheap model failed where the strong one did not.
From each pool a spread-out subset is kept (farthest-point sampling on the
embeddings), so the examples cover the pool rather than its densest corner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tierwise.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tierwise.embeddings.base import Embedder
    from tierwise.learning.outcomes import OutcomeTable

GOOD, BAD = 0.8, 0.2


def fit_examples(
    table: OutcomeTable,
    cheap: str,
    strong: str,
    embedder: Embedder,
    *,
    per_tier: int = 32,
    max_chars: int = 500,
) -> dict[str, list[str]]:
    """`{"@cheapest": [...], "@strongest": [...]}` for `EmbeddingRouter`."""
    import numpy as np

    for model in (cheap, strong):
        if model not in table.models:
            raise ConfigError(f"model {model!r} is not in the table: {table.models}")
    scores = table.scores
    c, s = scores[:, table.models.index(cheap)], scores[:, table.models.index(strong)]
    with np.errstate(invalid="ignore"):
        easy = np.flatnonzero(c >= GOOD)
        hard = np.flatnonzero((c <= BAD) & (s >= GOOD))
    if len(easy) == 0 or len(hard) == 0:
        raise ConfigError(
            "the table has no prompts the cheap model got right, or none it "
            "got wrong where the strong one did not"
        )
    texts = [t[:max_chars] for t in table.texts]
    return {
        "@cheapest": _spread([texts[i] for i in easy], embedder, per_tier),
        "@strongest": _spread([texts[i] for i in hard], embedder, per_tier),
    }


def _spread(texts: list[str], embedder: Embedder, count: int) -> list[str]:
    unique = list(dict.fromkeys(t for t in texts if t.strip()))
    if len(unique) <= count:
        return unique
    vectors = embedder.embed(unique)
    return [unique[i] for i in farthest_points(vectors, count)]


def farthest_points(vectors: npt.NDArray[np.float32], count: int) -> list[int]:
    """Indexes of `count` rows, each the farthest (cosine) from those chosen so far,
    starting from the row nearest the centroid."""
    import numpy as np

    centroid = vectors.mean(axis=0)
    chosen = [int(np.argmax(vectors @ centroid))]
    nearest = vectors @ vectors[chosen[0]]
    while len(chosen) < count:
        pick = int(np.argmin(nearest))
        chosen.append(pick)
        nearest = np.maximum(nearest, vectors @ vectors[pick])
    return chosen
