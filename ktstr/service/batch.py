"""Group commit for the hot path: requests that arrive while the database is busy with
one batch go together in the next.

Every claim and every result is a write transaction of its own: on PostgreSQL a round
trip, a WAL flush and a statement's Python in psycopg; on SQLite the writer lock and a
commit. With many workers asking at once, ``Batcher`` runs the requests that queued up
meanwhile as one batch (one transaction, one statement per kind on PostgreSQL), so
that cost is paid once per batch instead of once per request. Nothing waits for a batch
to fill: a request that finds a free slot starts a batch at once, alone if it is alone;
batches only form while others are in flight.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Batcher(Generic[A, R]):
    """``await batcher(item)``: ``run`` is called with lists of items (at most
    ``max_size``, in arrival order, at most ``slots`` calls at once) and returns one
    result per item, in order. If ``run`` raises, every item of that batch raises it.
    Use it on one event loop."""

    def __init__(self, run: Callable[[list[A]], Awaitable[list[R]]], *, slots: int = 1,
                 max_size: int = 64) -> None:
        self._run = run
        self._slots = slots
        self._max_size = max_size
        self._queue: collections.deque[tuple[A, asyncio.Future[R]]] = collections.deque()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: batches run and items in them (for tests and the benchmark's notes)
        self.batches = 0
        self.items = 0

    async def __call__(self, item: A) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, fut))
        if self._running < self._slots:
            self._running += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                n = min(len(self._queue), self._max_size)
                batch = [self._queue.popleft() for _ in range(n)]
                self.batches += 1
                self.items += n
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                except BaseException:  # the loop is going away: so are the callers
                    for _, fut in batch:
                        fut.cancel()
                    raise
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():  # its caller may have been cancelled meanwhile
                        fut.set_result(result)
        finally:
            self._running -= 1
