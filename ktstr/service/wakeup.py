"""Wake-ups for long-polling claims.

An idle worker's claim request subscribes *before* it looks for a job, then waits on its
future; whoever adds claimable jobs (a plan submit, a requeue) wakes as many waiters of
that SUT class as there are new jobs, oldest waiter first. With several service
processes (``ktstr sched run --workers N`` on PostgreSQL) each ``notify`` is also handed
to ``relay`` (``ktstr.service.relay``: LISTEN/NOTIFY), which ``deliver``s it to the other
processes' waiters. A slow fallback poll in the claim loop covers anything else that
changes the database (another service without the relay, a lost notification).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

#: wake-up key (not a class id) for changes only the dispatcher cares about (a plan
#: cancelled or a user disabled: its dispatched running jobs are cancelled at once)
DISPATCH_KEY = -1
#: ``notify`` count: every waiter of the key
ALL = -1


class Wakeup:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, deque[asyncio.Future[None]]] = {}
        #: waiters released by a notify (not by their own timeout or the fallback poll)
        self.woken = 0
        #: also called with every ``notify`` (key, count): the cross-process relay
        self.relay: Callable[[int | None, int], None] | None = None

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

    def notify_all(self, key: int) -> None:
        """Thread-safe: wake every waiter of ``key`` (e.g. everyone waiting on a lease)."""
        self.notify(key, ALL)

    def notify(self, sutclass_id: int | None, count: int = 1) -> None:
        """Thread-safe: wake ``count`` waiters of the class (every waiter when the class
        is ``None`` or the count is ``ALL``), here and, through the relay, in the other
        service processes."""
        self.deliver(sutclass_id, count)
        if self.relay is not None:
            self.relay(sutclass_id, count)

    def deliver(self, sutclass_id: int | None, count: int = 1) -> None:
        """Thread-safe: ``notify`` for this process's waiters only (a wake-up relayed
        from another process, or one handed on to the next waiter here)."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._wake, sutclass_id, count)

    def _wake(self, sutclass_id: int | None, count: int) -> None:
        queues = (list(self._waiters.values()) if sutclass_id is None
                  else [self._waiters.get(sutclass_id, deque())])
        for queue in queues:
            n = len(queue) if sutclass_id is None or count == ALL else count
            while queue and n > 0:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)
                    self.woken += 1
                    n -= 1
