"""Batches request records off the request path into a store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from tierwise.record import RequestRecord
from tierwise.store.base import Store

log = logging.getLogger("tierwise.store")


class RecordWriter:
    """`submit` is O(1) and never waits; a background task writes batches of up
    to `batch_size` every `interval_s` (sooner when a batch fills). `close`
    writes everything still queued. A failed write is retried with the next
    batch; records are dropped (and counted) only past `max_queue`."""

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 500,
        interval_s: float = 0.25,
        max_queue: int = 100_000,
        retention_days: float | None = None,
    ) -> None:
        self.store = store
        self.batch_size, self.interval_s, self.max_queue = batch_size, interval_s, max_queue
        self.retention_days = retention_days
        self.dropped = 0
        self.written = 0
        self._queue: deque[RequestRecord] = deque()
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await self.store.migrate()
        await self._prune()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def submit(self, record: RequestRecord) -> None:
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Write everything queued now, after any batch already being written."""
        async with self._writing:
            while self._queue:
                if not await self._write_batch():
                    break

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
        await self.store.close()

    async def _loop(self) -> None:
        pruned_at = time.monotonic()
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            await self.flush()
            if time.monotonic() - pruned_at > 3600:
                await self._prune()
                pruned_at = time.monotonic()

    async def _write_batch(self) -> bool:
        batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
        try:
            await self.store.record(batch)
        except Exception:
            log.exception("writing %d request records failed; will retry", len(batch))
            self._queue.extendleft(reversed(batch))
            await asyncio.sleep(min(self.interval_s, 1.0))
            return False
        self.written += len(batch)
        return True

    async def _prune(self) -> None:
        if self.retention_days is None:
            return
        removed = await self.store.prune(time.time() - self.retention_days * 86400)
        if removed:
            log.info("removed %d request records older than %s days", removed, self.retention_days)
