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
RETRY_S = 1.0


class RecordWriter:
    """`submit` is O(1) and never waits; a background task writes batches of up
    to `batch_size` every `interval_s` (sooner when a batch fills). `close`
    writes everything still queued. While the store does not answer, at start
    or later, records stay queued, in order, and are written when it answers
    again; they are dropped (and counted) only past `max_queue`. `outage` says
    why the store is down (None while it answers); one log line marks each
    change."""

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
        self.submitted = 0
        self.written = 0
        self.outage: str | None = None
        self._migrated = False
        self._queue: deque[RequestRecord] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Migrate the store and start writing; a store that does not answer is
        logged once and tried again in the background, never raised."""
        await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    @property
    def available(self) -> bool:
        """The store is migrated and its last call succeeded."""
        return self._migrated and self.outage is None

    def submit(self, record: RequestRecord) -> None:
        if len(self._queue) >= self.max_queue:
            if not self.dropped:
                log.error("request log queue full (%d records): dropping records", self.max_queue)
            self.dropped += 1
            return
        self._queue.append(record)
        self.submitted += 1
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Records submitted and not yet committed: queued, or in a batch being written."""
        return self.submitted - self.written

    async def flush(self) -> bool:
        """Write every record submitted before this call, after any batch already
        being written; False when the store failed first."""
        target = self.submitted
        async with self._writing:
            if (self.outage is not None or not self._migrated) and not await self._connect():
                return False
            while self.written < target:
                if not await self._write_batch():
                    return False
            self._recovered()
        return True

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._stop.set()
        if self._task is not None:
            await self._task
        if not await self.flush() and self.pending:
            log.error(
                "lost %d request records: the request store is still unavailable (%s)",
                self.pending,
                self.outage,
            )
        await self.store.close()

    async def _loop(self) -> None:
        pruned_at = time.monotonic()
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            if not await self.flush():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), RETRY_S)
            elif time.monotonic() - pruned_at > 3600:
                await self._prune()
                pruned_at = time.monotonic()

    async def _connect(self) -> bool:
        """Migrate (and prune, the first time); False, noting the outage, on failure."""
        try:
            await self.store.migrate()
        except Exception as exc:
            self.note_failure(exc)
            return False
        if not self._migrated:
            self._migrated = True
            await self._prune()
        return True

    async def _write_batch(self) -> bool:
        batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
        try:
            await self.store.record(batch)
        except Exception as exc:
            self._queue.extendleft(reversed(batch))
            self.note_failure(exc)
            return False
        self.written += len(batch)
        return True

    def note_failure(self, exc: BaseException) -> None:
        """Mark the store unreachable (logged once per outage); the next flush tries it."""
        reason = f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}"
        if self.outage is None:
            log.error(
                "request store %s unavailable (%s); still serving, keeping up to %d request "
                "records in memory until it answers",
                self.store.location,
                reason,
                self.max_queue,
            )
        self.outage = reason

    def _recovered(self) -> None:
        if self.outage is not None:
            log.warning(
                "request store %s answers again; the records kept meanwhile are written "
                "(%d dropped since start, over max_queue)",
                self.store.location,
                self.dropped,
            )
        self.outage = None

    async def _prune(self) -> None:
        if self.retention_days is None:
            return
        try:
            removed = await self.store.prune(time.time() - self.retention_days * 86400)
        except Exception as exc:
            self.note_failure(exc)
            return
        if removed:
            log.info("removed %d request records older than %s days", removed, self.retention_days)
