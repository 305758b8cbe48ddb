"""Health state shared through Redis, and the guard every Redis-backed state runs behind.

Each operation is one Lua script, so replicas see one breaker per deployment. Times
are the caller's `now` (never Redis TIME): with the same clock the breaker behaves
exactly as `MemoryHealthState`. Across replicas `now` must be a shared clock
(wall-clock epoch seconds), since open periods and probe ages are compared to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tierwise.config import BreakerConfig, Cooldown
from tierwise.resilience.breaker import Breaker, BreakerState
from tierwise.state.base import DeploymentHealth
from tierwise.state.memory import LATENCY_SMOOTHING, MemoryHealthState

log = logging.getLogger(__name__)
T = TypeVar("T")
OnUnavailable = Literal["open", "closed"]


class Down(Enum):
    """What a guarded operation returns when Redis did not answer."""

    DOWN = "down"


DOWN = Down.DOWN


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Where keys live and what to do while Redis is unreachable: `open` serves from
    in-process state, `closed` refuses."""

    namespace: str = "default"
    key_prefix: str = "tierwise"
    on_unavailable: OnUnavailable = "open"
    op_timeout_s: float = 0.5
    down_after: int = 3
    probe_min_s: float = 0.5
    probe_max_s: float = 30.0

    def key(self, *parts: str) -> str:
        """`prefix:{namespace}:parts...`; the braces keep a namespace on one cluster slot."""
        return ":".join((self.key_prefix, "{" + self.namespace + "}", *parts))


def redis_client(
    url: str = "redis://127.0.0.1:6379/0", *, timeout_s: float = 0.2, max_connections: int = 32
) -> Redis:
    """A client that gives up fast (short socket timeouts, no retries), connects
    cheaply (RESP2, no HELLO or CLIENT SETINFO) and makes a burst wait for a pooled
    connection rather than fail."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=1.0,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        driver_info=None,
        protocol=2,
    )
    return Redis.from_pool(pool)


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisGuard:
    """Runs Redis operations under a deadline. A failed operation returns `DOWN`;
    after `down_after` failures in a row it skips Redis and probes it in the
    background, backing off, until it answers. It logs each transition once and
    counts every failed operation and probe in `failures`."""

    def __init__(
        self,
        client: Redis,
        name: str,
        options: RedisOptions,
        *,
        on_recover: Callable[[], Awaitable[None]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.name, self.options = client, name, options
        self.failures = 0
        self.available = True
        self._streak = 0
        self._on_recover = on_recover
        self._monotonic = monotonic
        self._delay = options.probe_min_s
        self._next_probe = 0.0
        self._probe: asyncio.Task[None] | None = None

    async def run(self, op: Callable[[], Awaitable[T]]) -> T | Down:
        if not self.available:
            self._schedule_probe()
            return DOWN
        try:
            async with asyncio.timeout(self.options.op_timeout_s):
                result = await op()
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail(exc)
            return DOWN
        self._streak = 0
        return result

    def retry_in_s(self) -> float:
        """Seconds until the next probe of an unreachable Redis (0 when reachable)."""
        return 0.0 if self.available else max(0.0, self._next_probe - self._monotonic())

    async def aclose(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)

    def _fail(self, exc: BaseException) -> None:
        self.failures += 1
        self._streak += 1
        if not self.available or self._streak < self.options.down_after:
            return
        self.available = False
        self._delay = self.options.probe_min_s
        self._next_probe = self._monotonic() + self._delay
        log.warning(
            "%s: redis unreachable (%s: %s); failing %s until it answers",
            self.name,
            type(exc).__name__,
            exc,
            self.options.on_unavailable,
        )

    def _schedule_probe(self) -> None:
        probing = self._probe is not None and not self._probe.done()
        if probing or self._monotonic() < self._next_probe:
            return
        self._probe = asyncio.create_task(self._run_probe())

    async def _run_probe(self) -> None:
        try:
            async with asyncio.timeout(self.options.op_timeout_s):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError):
            self.failures += 1
            self._delay = min(self._delay * 2, self.options.probe_max_s)
            self._next_probe = self._monotonic() + self._delay
            return
        self.available, self._streak = True, 0
        log.warning("%s: redis reachable again; back to shared state", self.name)
        if self._on_recover is not None:
            await self._on_recover()


ACQUIRE_LUA = """
local key, now = KEYS[1], tonumber(ARGV[1])
local state = redis.call('HGET', key, 'state') or 'closed'
if state == 'open' then
  if now < tonumber(redis.call('HGET', key, 'open_until')) then return 0 end
  state = 'half_open'
  redis.call('HSET', key, 'state', state)
  redis.call('HDEL', key, 'probe_started')
end
if state == 'half_open' then
  local started = redis.call('HGET', key, 'probe_started')
  if started and now - tonumber(started) <= math.max(tonumber(ARGV[2]), 1.0) then
    return 0
  end
  redis.call('HSET', key, 'probe_started', ARGV[1])
end
redis.call('HINCRBY', key, 'n:' .. ARGV[3], 1)
redis.call('HSET', key, 't:' .. ARGV[3], ARGV[1])
redis.call('EXPIRE', key, ARGV[4])
return 1
"""

RELEASE_LUA = """
local key, now = KEYS[1], tonumber(ARGV[1])
local ok, kind, given, latency = ARGV[2] == '1', ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local threshold, base, cap = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local replica, stale_before = ARGV[10], now - tonumber(ARGV[11])
local function num(field, default)
  local v = redis.call('HGET', key, field)
  if v then return tonumber(v) end
  return default
end
local function close()
  redis.call('HSET', key, 'state', 'closed', 'failures', 0, 'trips', 0)
  redis.call('HDEL', key, 'probe_started')
end
local function open(trips)
  local duration = math.min(base * 2 ^ math.min(trips, 16), cap)
  if given then
    local floor = 0
    if trips > 0 then floor = duration end
    duration = math.min(math.max(floor, given), cap)
  end
  redis.call('HSET', key, 'state', 'open', 'open_until', now + duration,
    'trips', trips + 1, 'failures', 0)
  redis.call('HDEL', key, 'probe_started')
end
redis.call('HSET', key, 'n:' .. replica, math.max(0, num('n:' .. replica, 0) - 1),
  't:' .. replica, ARGV[1])
local state = redis.call('HGET', key, 'state') or 'closed'
if ok then
  close()
elseif kind == 'none' then
  if state == 'half_open' then close()
  elseif state == 'closed' then redis.call('HSET', key, 'failures', 0) end
else
  local failures = num('failures', 0) + 1
  if kind == 'immediate' or state == 'half_open' or failures >= threshold then
    open(num('trips', 0))
  else
    redis.call('HSET', key, 'failures', failures)
  end
end
if ok and latency then
  local previous = num('latency_ms', nil)
  if previous then latency = previous + tonumber(ARGV[9]) * (latency - previous) end
  redis.call('HSET', key, 'latency_ms', latency)
end
local fields = redis.call('HGETALL', key)
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, 2) == 't:' and tonumber(fields[i + 1]) < stale_before then
    redis.call('HDEL', key, name, 'n:' .. string.sub(name, 3))
  end
end
redis.call('EXPIRE', key, ARGV[12])
return 1
"""


def health_from_fields(
    fields: dict[str, str], now: float, config: BreakerConfig, inflight_ttl_s: float
) -> DeploymentHealth:
    """The health a breaker hash describes at `now`; replicas silent for longer than
    `inflight_ttl_s` no longer count towards the load."""
    probe = fields.get("probe_started")
    breaker = Breaker(
        config,
        BreakerState(fields.get("state", "closed")),
        int(fields.get("failures", 0)),
        int(fields.get("trips", 0)),
        float(fields.get("open_until", 0.0)),
        None if probe is None else float(probe),
    )
    in_flight = sum(
        int(value)
        for name, value in fields.items()
        if name.startswith("n:")
        and float(fields.get("t:" + name[2:], "-inf")) >= now - inflight_ttl_s
    )
    latency = fields.get("latency_ms")
    return DeploymentHealth(
        breaker.state.value,
        None if latency is None else float(latency),
        in_flight,
        breaker.reopens_at(now),
    )


class RedisBacked:
    """How the Redis connection behind a shared-state object is doing."""

    guard: RedisGuard

    @property
    def redis_failures(self) -> int:
        return self.guard.failures

    @property
    def redis_available(self) -> bool:
        return self.guard.available


class RedisHealthState(RedisBacked):
    """`HealthState` on Redis: breaker, latency average and per-replica load counts
    in one hash per deployment. While Redis is unreachable, `open` falls back to an
    in-process `MemoryHealthState` and `closed` refuses every `acquire`."""

    def __init__(
        self,
        client: Redis,
        config: BreakerConfig | None = None,
        options: RedisOptions | None = None,
        *,
        replica_id: str | None = None,
        inflight_ttl_s: float = 300.0,
        key_ttl_s: int = 86_400,
    ) -> None:
        self.client = client
        self.config = config or BreakerConfig()
        self.options = options or RedisOptions()
        self.replica_id = replica_id or default_replica_id()
        self.inflight_ttl_s = inflight_ttl_s
        self.key_ttl_s = key_ttl_s
        self.local = MemoryHealthState(self.config)
        self.guard = RedisGuard(client, "health", self.options, on_recover=self._forget_local)
        self._acquire = client.register_script(ACQUIRE_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def key(self, deployment: str) -> str:
        return self.options.key("breaker", deployment)

    async def _forget_local(self) -> None:
        """Back on Redis: the next outage starts from a clean local state."""
        self.local = MemoryHealthState(self.config)

    async def acquire(self, deployment: str, now: float) -> bool:
        cooldown_s, ttl = repr(self.config.cooldown_s), self.key_ttl_s
        args: list[str | int] = [repr(now), cooldown_s, self.replica_id, ttl]
        result = await self.guard.run(lambda: self._acquire([self.key(deployment)], args))
        if result is DOWN:
            if self.options.on_unavailable == "closed":
                return False
            return await self.local.acquire(deployment, now)
        return int(result) == 1

    async def release(
        self,
        deployment: str,
        now: float,
        *,
        ok: bool,
        latency_ms: float | None,
        cooldown: Cooldown = Cooldown.NONE,
        cooldown_s: float | None = None,
    ) -> None:
        args = self._release_args(now, ok, latency_ms, cooldown, cooldown_s)
        result = await self.guard.run(lambda: self._release([self.key(deployment)], args))
        if result is DOWN and self.options.on_unavailable == "open":
            await self.local.release(
                deployment,
                now,
                ok=ok,
                latency_ms=latency_ms,
                cooldown=cooldown,
                cooldown_s=cooldown_s,
            )

    def _release_args(
        self,
        now: float,
        ok: bool,
        latency_ms: float | None,
        cooldown: Cooldown,
        cooldown_s: float | None,
    ) -> list[str | int]:
        c = self.config
        return [
            repr(now),
            "1" if ok else "0",
            cooldown.value,
            "" if cooldown_s is None else repr(float(cooldown_s)),
            "" if latency_ms is None else repr(float(latency_ms)),
            c.failure_threshold,
            repr(c.cooldown_s),
            repr(c.max_cooldown_s),
            repr(LATENCY_SMOOTHING),
            self.replica_id,
            repr(self.inflight_ttl_s),
            self.key_ttl_s,
        ]

    async def health(self, deployment: str, now: float) -> DeploymentHealth:
        key = self.key(deployment)
        raw = await self.guard.run(lambda: self.client.hgetall(key))
        if raw is not DOWN:
            fields = {text(k): text(v) for k, v in raw.items()}
            return health_from_fields(fields, now, self.config, self.inflight_ttl_s)
        if self.options.on_unavailable == "open":
            return await self.local.health(deployment, now)
        return DeploymentHealth("open", None, 0, now + self.guard.retry_in_s())

    async def aclose(self) -> None:
        """Stop the background probe; the client is the caller's to close."""
        await self.guard.aclose()
