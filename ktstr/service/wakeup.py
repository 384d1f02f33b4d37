"""Wake-ups for long-polling claims.

An idle worker's claim request subscribes *before* it looks for a job, then waits on its
future; whoever adds claimable jobs (a plan submit, a requeue) wakes as many waiters of
that SUT class as there are new jobs, oldest waiter first. A short fallback poll in the
claim loop covers changes made by another service process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Wakeup:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, deque[asyncio.Future[None]]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, sutclass_id: int) -> asyncio.Future[None]:
        """Call on the event loop."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(sutclass_id, deque()).append(fut)
        return fut

    def unsubscribe(self, sutclass_id: int, fut: asyncio.Future[None]) -> None:
        queue = self._waiters.get(sutclass_id)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(fut)
        if not fut.done():
            fut.cancel()

    def notify(self, sutclass_id: int | None, count: int = 1) -> None:
        """Thread-safe: wake ``count`` waiters of the class (every waiter when the class
        is ``None``)."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._wake, sutclass_id, count)

    def _wake(self, sutclass_id: int | None, count: int) -> None:
        queues = (list(self._waiters.values()) if sutclass_id is None
                  else [self._waiters.get(sutclass_id, deque())])
        for queue in queues:
            n = len(queue) if sutclass_id is None else count
            while queue and n > 0:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    n -= 1
