"""The in-process cache: least recently used entries go first past `max_entries`."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from tierwise.cache.base import CachedAnswer


class MemoryResponseCache:
    """An LRU map of key to (expiry, answer); `now` is the clock TTLs count on."""

    def __init__(self, max_entries: int = 10_000, now: Callable[[], float] = time.time) -> None:
        self.max_entries, self._now = max_entries, now
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: str) -> CachedAnswer | None:
        item = self._entries.get(key)
        if item is None:
            return None
        if self._now() >= item[0]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return item[1]

    def store(self, key: str, entry: CachedAnswer, ttl_s: float) -> None:
        self._entries[key] = (self._now() + ttl_s, entry)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def get(self, key: str) -> CachedAnswer | None:
        return self.lookup(key)

    async def put(self, key: str, entry: CachedAnswer, ttl_s: float) -> None:
        self.store(key, entry, ttl_s)

    async def aclose(self) -> None:
        self._entries.clear()
