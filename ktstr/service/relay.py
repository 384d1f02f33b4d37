"""Wake-ups across service processes: PostgreSQL LISTEN/NOTIFY.

``ktstr sched run --workers N`` (PostgreSQL) serves the API from N processes; a claim
long-polling in one must wake when a plan is submitted through another. Each process
runs a ``PgRelay``: every local ``Wakeup.notify`` is sent as ``NOTIFY ktstr_wakeup``
(payload ``ORIGIN KIND KEY COUNT``) on one connection, and what the other processes sent
arrives on a second, LISTENing connection and is ``deliver``ed to this process's waiters.
A notification that is lost (a dropped connection) costs at most the claim loop's
fallback poll.

The same channel carries credential changes: a user disabled or a token rotated in one
process (``Channel.AUTH``) makes every other process forget the tokens it had cached, so
the old token is refused everywhere as soon as the notification arrives, not after the
cache's ``AUTH_CACHE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import uuid
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import URL

from ktstr.service.db.engine import libpq_url
from ktstr.service.wakeup import Wakeup

log = logging.getLogger(__name__)

CHANNEL = "ktstr_wakeup"
#: ``key`` of a wake-up for every waiter of every key (``Wakeup.notify(None)``)
_ANY = "*"
#: bound on the wait for LISTEN at start-up, and the pause before a reconnect
CONNECT_TIMEOUT_S = 10.0
RETRY_S = 1.0


class Channel(enum.StrEnum):
    """Which of the service's ``Wakeup``s a notification is for."""

    JOBS = "jobs"  # ServiceContext.wakeup: claims, the dispatcher
    LEASES = "leases"  # ServiceContext.lease_events: lease long-polls
    AUTH = "auth"  # a user disabled or a token rotated: forget cached tokens


def encode(origin: str, channel: Channel, key: int | None, count: int) -> str:
    """The NOTIFY payload (pure)."""
    return f"{origin} {channel.value} {_ANY if key is None else key} {count}"


def decode(payload: str) -> tuple[str, Channel, int | None, int] | None:
    """(origin, channel, key, count) of a payload, None if it is not one of ours (pure)."""
    parts = payload.split(" ")
    if len(parts) != 4:
        return None
    origin, channel, key, count = parts
    try:
        return (origin, Channel(channel), None if key == _ANY else int(key), int(count))
    except ValueError:
        return None


_Send = Callable[[int | None, int], None]


class PgRelay:
    """Relays the ``Wakeup``s of one service process to and from the others on the same
    PostgreSQL database. ``run`` on the event loop until ``stop``; ``ready`` is set once
    this process LISTENs."""

    def __init__(self, url: URL, wakeups: dict[Channel, Wakeup],
                 forget_tokens: Callable[[], None] | None = None) -> None:
        """``forget_tokens``: called on the loop when another process changed
        credentials (``Channel.AUTH``)."""
        self.conninfo = libpq_url(url)
        self.wakeups = wakeups
        self.forget_tokens = forget_tokens
        #: tells this process's notifications from the others' (unique per relay, not
        #: per pid: tests run several services in one process)
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.ready = asyncio.Event()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: notifications delivered here from other processes
        self.received = 0

    def attach(self) -> None:
        """Route every local ``notify`` of the wake-ups through this relay (on the loop)."""
        self._loop = asyncio.get_running_loop()
        for channel, wakeup in self.wakeups.items():
            wakeup.relay = self._sender(channel)

    def _sender(self, channel: Channel) -> _Send:
        def send(key: int | None, count: int) -> None:  # thread-safe
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._outbox.put_nowait,
                                          encode(self.origin, channel, key, count))
        return send

    def tokens_changed(self) -> None:
        """Thread-safe: tell the other processes to forget their cached tokens."""
        self._sender(Channel.AUTH)(None, 0)

    def detach(self) -> None:
        for wakeup in self.wakeups.values():
            wakeup.relay = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with (await psycopg.AsyncConnection.connect(
                                self.conninfo, autocommit=True) as listener,
                            await psycopg.AsyncConnection.connect(
                                self.conninfo, autocommit=True) as talker):
                    await listener.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    await self._serve(listener, talker, stop)
            except (OSError, psycopg.Error) as exc:
                log.warning("wake-up relay: %s; reconnecting", exc,
                            extra={"action": "relay"})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_S)

    async def _serve(self, listener: psycopg.AsyncConnection[tuple[object, ...]],
                     talker: psycopg.AsyncConnection[tuple[object, ...]],
                     stop: asyncio.Event) -> None:
        async def receive() -> None:
            async for note in listener.notifies():
                got = decode(note.payload)
                if got is None or got[0] == self.origin:
                    continue
                _origin, channel, key, count = got
                if channel is Channel.AUTH:
                    self.received += 1
                    if self.forget_tokens is not None:
                        self.forget_tokens()
                    continue
                wakeup = self.wakeups.get(channel)
                if wakeup is not None:
                    self.received += 1
                    wakeup.deliver(key, count)

        async def send() -> None:
            while True:
                payload = await self._outbox.get()
                await talker.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

        tasks = [asyncio.create_task(receive()), asyncio.create_task(send()),
                 asyncio.create_task(stop.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = None if t.cancelled() else t.exception()
                if exc is not None:
                    raise exc
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

