"""The response cache: exact answers keyed on the normalised request, and an optional
semantic index over them (see `docs/configuration.md`, "Caching")."""

from tierwise.cache.base import CachedAnswer, ResponseCache
from tierwise.cache.key import cacheable, context_key, request_key
from tierwise.cache.memory import MemoryResponseCache

__all__ = [
    "CachedAnswer",
    "MemoryResponseCache",
    "ResponseCache",
    "cacheable",
    "context_key",
    "request_key",
]
