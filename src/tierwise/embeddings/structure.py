"""Prompt structure as an embedding: length, numbers, symbols, code, constraints,
answer format. No word of the topic enters, so what a router learns from these
features carries over to prompts from other sources better than topic embeddings.

Each feature is a fixed transform with a fixed centre and scale (no statistics of
any data set), then a constant is appended and the vector is L2-normalised, as the
`Embedder` interface asks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

WORD = re.compile(r"\w+")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
MATH = re.compile(r"[=+*/^<>]|\\frac|\\sqrt|\bsqrt\b")
CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|=>|\bfunction\b", re.M)
CONSTRAINT = re.compile(
    r"\b(must|exactly|at least|at most|no more than|words|format|json|bullet|list|table)\b",
    re.I,
)
CHOICES = re.compile(r"^\s*\(?[A-Da-d][.)]\s", re.M)
MONEY = re.compile(r"\$|%|\bpercent\b|\bdollars?\b")
OPEN = re.compile(
    r"\b(why|explain|describe|compare|discuss|write|story|essay|poem|imagine)\b", re.I
)


def _counts(text: str) -> tuple[int, int, int, int]:
    words = WORD.findall(text)
    letters = sum(len(w) for w in words)
    return len(text), len(words), len(NUMBER.findall(text)), letters


def _flag(pattern: re.Pattern[str]) -> Callable[[str], float]:
    return lambda text: 1.0 if pattern.search(text) else -1.0


FEATURES: tuple[tuple[str, Callable[[str], float]], ...] = (
    ("chars", lambda t: (math.log1p(_counts(t)[0]) - 5.5) / 1.5),
    ("words", lambda t: (math.log1p(_counts(t)[1]) - 4.0) / 1.3),
    ("numbers", lambda t: math.log1p(_counts(t)[2]) - 1.0),
    ("number_share", lambda t: (_counts(t)[2] / max(_counts(t)[1], 1) - 0.05) / 0.1),
    ("lines", lambda t: math.log1p(t.count("\n") + 1) - 1.5),
    ("questions", lambda t: min(t.count("?"), 5) / 2 - 0.5),
    ("math", _flag(MATH)),
    ("code", _flag(CODE)),
    ("constraints", _flag(CONSTRAINT)),
    ("choices", _flag(CHOICES)),
    ("word_length", lambda t: _counts(t)[3] / max(_counts(t)[1], 1) - 4.5),
    ("money", _flag(MONEY)),
    ("open_ended", _flag(OPEN)),
)
BIAS = 3.0


class StructureEmbedder:
    """Topic-free features of a prompt's form, as a unit vector."""

    @property
    def name(self) -> str:
        return "structure-v1"

    @property
    def dimension(self) -> int:
        return len(FEATURES) + 1

    def features(self, text: str) -> dict[str, float]:
        """Each named feature before normalisation (for explanations)."""
        return {name: round(feature(text), 4) for name, feature in FEATURES}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        rows = [[feature(text) for _, feature in FEATURES] + [BIAS] for text in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimension)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = out / norms
        return result
