"""Text embeddings for routing: one small interface, several implementations."""

from tierwise.embeddings.base import Embedder
from tierwise.embeddings.hashing import HashingEmbedder

__all__ = ["Embedder", "HashingEmbedder"]
