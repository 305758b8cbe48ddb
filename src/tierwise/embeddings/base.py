"""The embedder interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Identifies the model and its settings (stored with fitted routers)."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """An array of shape (len(texts), dimension), each row of unit length."""
        ...


@runtime_checkable
class Loading(Protocol):
    """An embedder whose model loads on first use, and can be loaded ahead of it."""

    @property
    def loaded(self) -> bool: ...

    def load(self) -> object:
        """Load the model now."""
        ...


@runtime_checkable
class Remembering(Protocol):
    """An embedder that keeps recent texts' vectors and answers from them alone."""

    def cached(self, text: str) -> npt.NDArray[np.float32] | None:
        """The kept vector of `text`, or None (nothing is computed)."""
        ...
