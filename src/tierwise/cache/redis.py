"""The cache shared by replicas through Redis: one string per key, expiring by TTL.

Keys are `tierwise:{namespace}:cache:<key>` (the namespace of `state.namespace`).
Behind the same guard as the shared state: while Redis does not answer, lookups
miss and stores are skipped, so the cache never fails a request.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from tierwise.cache.base import CachedAnswer, decode, encode
from tierwise.state.redis import DOWN, RedisGuard, RedisOptions

log = logging.getLogger(__name__)


class RedisResponseCache:
    def __init__(self, client: Redis, options: RedisOptions, *, owns_client: bool = True) -> None:
        self.client, self.options, self._owns = client, options, owns_client
        self.guard = RedisGuard(client, "response cache", options)

    def _key(self, key: str) -> str:
        return self.options.key("cache", key)

    async def get(self, key: str) -> CachedAnswer | None:
        raw = await self.guard.run(lambda: self.client.get(self._key(key)))
        if raw is DOWN or raw is None:
            return None
        try:
            return decode(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("response cache: unreadable entry %s (%s)", key, exc)
            return None

    async def put(self, key: str, entry: CachedAnswer, ttl_s: float) -> None:
        ttl_ms = max(1, int(ttl_s * 1000))
        await self.guard.run(lambda: self.client.set(self._key(key), encode(entry), px=ttl_ms))

    @property
    def redis_available(self) -> bool:
        return self.guard.available

    @property
    def redis_failures(self) -> int:
        return self.guard.failures

    async def aclose(self) -> None:
        await self.guard.aclose()
        if self._owns:
            await self.client.aclose()
