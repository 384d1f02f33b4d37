"""``QmpChannel``: a synchronous QMP session that owns its event loop.

``qemu.qmp``'s synchronous shim (``qemu.qmp.legacy``) runs on the *calling thread's*
event loop, creating and registering one when there is none, and never closes it. In
a long-lived process that also runs asyncio code (a pytest worker that boots VMs and
then runs ``asyncio.run``, the service's worker) that loop is replaced, dropped
unclosed and reported as an unclosed event loop whenever the garbage collector gets to
it. This channel drives ``qemu.qmp.QMPClient`` on a private loop instead: nothing is
registered with the thread, and ``close`` closes the loop with the session.

One thread at a time may use a channel (as with the shim it replaces).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from qemu.qmp import QMPClient

T = TypeVar("T")


class QmpChannel:
    """QMP over an already-connected socket: ``connect``, ``cmd``, ``pull_event``,
    ``close``. Errors are ``qemu.qmp``'s own (``ExecuteError`` for a refused command,
    ``ConnectError`` for a failed negotiation); a timed-out wait is ``TimeoutError``."""

    def __init__(self, sock: socket.socket, nickname: str | None = None) -> None:
        self._sock = sock
        self._client = QMPClient(nickname)
        self._loop = asyncio.new_event_loop()

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def _run(self, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``make()`` to completion on the private loop. The awaitable is made only
        once the channel is known open, so a refused call leaves no coroutine behind."""
        if self._loop.is_closed():
            raise RuntimeError("QMP channel is closed")
        return self._loop.run_until_complete(asyncio.wait_for(make(), timeout))

    def connect(self, negotiate: bool = True) -> None:
        """Read QEMU's greeting and (``negotiate``) leave capabilities mode."""
        self._client.await_greeting = negotiate
        self._client.negotiate = negotiate
        self._run(lambda: self._client.connect(self._sock))

    def cmd(self, command: str, **args: object) -> object:
        """Execute ``command``; its ``return`` value."""
        return self._run(lambda: self._client.execute(command, dict(args) or None))

    def pull_event(self, wait: float) -> dict[str, object]:
        """The next QMP event, waiting at most ``wait`` seconds (``TimeoutError``)."""
        return dict(self._run(self._client.events.get, wait))

    def close(self) -> None:
        """End the session and close the loop (idempotent). QEMU having hung up first
        (it does after ``quit``) is the normal end, not an error; any other disconnect
        error is raised after the loop is closed."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.disconnect)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        finally:
            leftover = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for task in leftover:
                task.cancel()
            if leftover:
                self._loop.run_until_complete(
                    asyncio.gather(*leftover, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
