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
    vectors: npt.NDArray[np.float32] | None = None,
) -> dict[str, list[str]]:
    """`{"@cheapest": [...], "@strongest": [...]}` for `EmbeddingRouter`. `vectors`:
    the table's embeddings by `embedder` (e.g. from the embedding cache); without
    them the pools' texts are embedded."""
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
        "@cheapest": _spread(texts, easy, embedder, per_tier, vectors),
        "@strongest": _spread(texts, hard, embedder, per_tier, vectors),
    }


def _spread(
    texts: list[str],
    rows: npt.NDArray[np.intp],
    embedder: Embedder,
    count: int,
    vectors: npt.NDArray[np.float32] | None,
) -> list[str]:
    """`count` spread-out distinct texts of `rows` (all when there are no more)."""
    first = {texts[i]: int(i) for i in rows[::-1] if texts[i].strip()}
    unique = sorted(first, key=lambda t: first[t])
    if len(unique) <= count:
        return unique
    points = embedder.embed(unique) if vectors is None else vectors[[first[t] for t in unique]]
    return [unique[i] for i in farthest_points(points, count)]


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
