"""Preparing and serving: migrations, SUT classes, the first admin, uvicorn on a socket.

``prepare`` and ``serve`` are what ``ktstr sched run`` calls; tests and benchmarks use
``ktstr.testing.ServiceThread`` which does the same in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ktstr.errors import InfraError
from ktstr.service.app import create_app
from ktstr.service.context import ServiceContext
from ktstr.service.db.engine import Database
from ktstr.service.db.jobs import forgive_outage
from ktstr.service.db.sutclasses import sync_sutclasses
from ktstr.service.db.users import ensure_admin
from ktstr.service.hotpath import HotPath
from ktstr.service.settings import Settings
from ktstr.service.sutclasses import load_sutclasses

log = logging.getLogger(__name__)

ADMIN_BANNER = "Created default admin user 'admin' with token: {token}"


def prepare(settings: Settings, db: Database) -> str | None:
    """Migrate, load SUT classes (refusing to start on any error), forgive workers the
    service's outage, create the first admin. Returns the new admin's token on the first
    start, else None. Call it once the listening socket is bound (``sched run`` on a port
    in use must fail before it creates the admin whose token only it would print)."""
    classes = load_sutclasses(settings.sutclasses)
    db.migrate()
    now = time.time()
    sync_sutclasses(db, classes, now)
    outage = forgive_outage(db, now)
    if outage:
        log.info("the service was down %.1fs; workers' heartbeat windows moved by that",
                 outage, extra={"action": "start"})
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    return ensure_admin(db, now)


@contextlib.contextmanager
def listening_socket(host: str, port: int) -> Iterator[socket.socket]:
    """A bound, listening TCP socket (``port`` 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit this; without it small responses wait ~40 ms on
        # Nagle + delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InfraError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        sock.listen(2048)
        yield sock
    finally:
        sock.close()


class CorkedTransport(asyncio.Transport):
    """A connection's transport whose writes of one event-loop turn leave in one send.
    uvicorn writes a response's status line and headers, then its body: two system
    calls and, with ``TCP_NODELAY``, two segments that each wake the client, for every
    response (13-18 % of the service's samples in the dispatch benchmark). Here the
    first write of a turn schedules a flush at the end of the turn and the writes until
    then are joined; ``close`` flushes first."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None
                                ) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return False  # a half-close would overtake the pending writes

    def write_eof(self) -> None:
        raise NotImplementedError("CorkedTransport does not half-close")


class CorkedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``CorkedTransport``: one send per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CorkedTransport(transport))


def make_server(ctx: ServiceContext, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(HotPath(create_app(ctx), ctx), log_level=log_level, log_config=None,
                            http=CorkedHttpTools,
                            # the service never reads the client's address: no
                            # X-Forwarded-* rewriting on every request
                            proxy_headers=False,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=2,
                            # idle keep-alive connections stay open this long; at uvicorn's
                            # 5 s default, busy clients reuse sockets the server just closed
                            timeout_keep_alive=75)
    return uvicorn.Server(config)


def serve_processes(settings: Settings, sock: socket.socket, processes: int, *,
                    log_level: str = "warning") -> int:
    """Serve ``sock`` from ``processes`` forked uvicorn processes on one PostgreSQL
    database (``ktstr sched run --workers N``; the caller has prepared the database and
    holds no connection to it). The first also runs the reaper and the dispatcher; all
    relay wake-ups over LISTEN/NOTIFY. SIGTERM or SIGINT stops every process gracefully;
    if one exits on its own, the others are stopped too. Returns the exit status (0 when
    every process stopped cleanly)."""
    children: list[int] = []
    sys.stdout.flush()  # nothing buffered before the fork may be written twice
    sys.stderr.flush()
    for i in range(processes):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (exercised through the CLI tests)
            status = 1
            try:
                with Database(settings.database_url) as db:
                    ctx = ServiceContext(settings=settings, db=db, primary=i == 0,
                                         relay_wakeups=True, freeze_heap=True)
                    make_server(ctx, log_level=log_level).run(sockets=[sock])
                status = 0
            except BaseException:
                log.exception("service process %d failed", i, extra={"action": "serve"})
            finally:
                os._exit(status)
        children.append(pid)

    stopping = False

    def stop_all(_sig: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        left = set(children)
        while left:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            if pid not in left:
                continue
            left.discard(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            # uvicorn ends a process it stopped on a signal by re-raising that signal
            if code != 0 and not (stopping and -code in (signal.SIGTERM, signal.SIGINT)):
                log.error("service process %d exited with %d; stopping the others", pid,
                          code, extra={"action": "serve"})
                status = 1
                stop_all()
            elif left and status == 0:
                stop_all()  # one stopped cleanly on its own: the service is stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
