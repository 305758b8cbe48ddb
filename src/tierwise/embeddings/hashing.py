"""A dependency-light embedder: hashed word and character n-grams.

Fast (well under a millisecond a text) and deterministic across processes; weaker
than a neural model, useful offline, in tests, and as a fallback.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    def __init__(self, dimension: int = 512, char_ngrams: int = 3) -> None:
        self._dimension, self._n = dimension, char_ngrams

    @property
    def name(self) -> str:
        return f"hashing-{self._dimension}-c{self._n}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text.lower()):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self._dimension
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        result: npt.NDArray[np.float32] = out / norms
        return result

    def _features(self, text: str) -> list[str]:
        words = WORD.findall(text)
        grams = [f"w:{w}" for w in words]
        grams += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
        for word in words:
            padded = f"<{word}>"
            grams += [f"c:{padded[i : i + self._n]}" for i in range(len(padded) - self._n + 1)]
        return grams
