"""The gateway's side of the cache: which routes cache, lookups, and what is stored."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierwise.accounting import bill
from tierwise.cache.base import CachedAnswer, ResponseCache
from tierwise.cache.key import cacheable, context_key, request_key
from tierwise.config import GatewayConfig
from tierwise.config.routes import RouteCacheConfig, SemanticCacheConfig
from tierwise.pricing import Price
from tierwise.record import RequestRecord
from tierwise.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from tierwise.cache.semantic import SemanticIndex

HIT, MISS = "hit", "miss"


@dataclass(slots=True)
class Probe:
    """One lookup: the entry found, or what a later `remember` needs to store one.
    `key` is None when the request may not be cached (e.g. temperature above 0)."""

    route: str
    ttl_s: float
    key: str | None = None
    hit: CachedAnswer | None = None
    similarity: float | None = None
    context: str | None = None
    vector: Any = None

    @property
    def result(self) -> str:
        return HIT if self.hit is not None else MISS


class ResponseCaching:
    def __init__(
        self,
        store: ResponseCache,
        routes: Mapping[str, RouteCacheConfig],
        now: Callable[[], float],
        max_entries: int = 10_000,
    ) -> None:
        self.store, self.routes, self._now = store, dict(routes), now
        self._semantic = {
            name: _semantic_index(semantic, now, max_entries)
            for name, route in self.routes.items()
            if (semantic := route.semantic) is not None
        }

    async def lookup(self, route: str, request: ChatRequest) -> Probe | None:
        """None when `route` has no cache; else a probe, a hit or a miss."""
        config = self.routes.get(route)
        if config is None:
            return None
        probe = Probe(route, config.ttl_s)
        if not cacheable(request, config.cache_nonzero_temperature):
            return probe
        probe.key = request_key(route, request)
        probe.hit = await self.store.get(probe.key)
        index = self._semantic.get(route)
        if probe.hit is None and index is not None:
            await self._near(index, probe, request)
        return probe

    async def _near(self, index: SemanticIndex, probe: Probe, request: ChatRequest) -> None:
        probe.context = context_key(probe.route, request)
        probe.vector = index.embed(request.last_user_text())
        match = index.nearest(probe.context, probe.vector)
        if match is not None:
            probe.hit = await self.store.get(match.key)
            probe.similarity = match.similarity if probe.hit is not None else None

    async def remember(self, probe: Probe, record: RequestRecord, response: ChatResponse) -> bool:
        """Store an answer that passed: status ok, no failed check on the answering
        attempt, and some content; True when stored."""
        if probe.key is None or probe.hit is not None or not storable(record, response):
            return False
        entry = CachedAnswer(
            response, record.final_deployment or "", record.final_tier or "", self._now()
        )
        await self.store.put(probe.key, entry, probe.ttl_s)
        index = self._semantic.get(probe.route)
        if index is not None and probe.context is not None:
            index.add(probe.context, probe.key, probe.vector, probe.ttl_s)
        return True

    async def aclose(self) -> None:
        await self.store.aclose()


def storable(record: RequestRecord, response: ChatResponse) -> bool:
    if record.status != "ok" or not record.calls or record.final_deployment is None:
        return False
    if any(not c.passed for c in record.calls[-1].checks):
        return False
    return bool(response.text() or response.tool_calls())


def _semantic_index(
    config: SemanticCacheConfig, now: Callable[[], float], size: int
) -> SemanticIndex:
    """The index of one route; numpy and the embedder load only here."""
    from tierwise.extras import require

    require("the semantic response cache", "routing", ("numpy",))
    from tierwise.cache.semantic import SemanticIndex
    from tierwise.routing.embedding import make_embedder

    embedder = make_embedder(config.embedder)
    return SemanticIndex(embedder, config.threshold, max_entries=size, now=now)


def build_caching(config: GatewayConfig, now: Callable[[], float]) -> ResponseCaching | None:
    """The cache of the routes that have one, in memory or in Redis as `state` says."""
    routes = {name: r.cache for name, r in config.routes.items() if r.cache is not None}
    if not routes:
        return None
    size = config.state.cache_max_entries
    store: ResponseCache
    if config.state.backend == "memory":
        from tierwise.cache.memory import MemoryResponseCache

        store = MemoryResponseCache(size, now)
    else:
        from tierwise.cache.redis import RedisResponseCache
        from tierwise.state.redis import RedisOptions, redis_client

        options = RedisOptions(namespace=config.state.namespace)
        store = RedisResponseCache(redis_client(config.state.redis_url), options)
    return ResponseCaching(store, routes, now, size)


def fill_hit(record: RequestRecord, hit: CachedAnswer, baseline: Price | None) -> None:
    """A record served from the cache: no attempts, nothing billed, and the baseline
    priced on the cached answer's tokens, so the whole baseline counts as saved."""
    record.cache = HIT
    record.final_deployment, record.final_tier = hit.deployment, hit.tier
    record.answer = hit.response.text()
    record.cost = bill([], None, baseline, hit.response.usage)
