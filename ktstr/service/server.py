"""Preparing and serving: migrations, SUT classes, the first admin, uvicorn on a socket.

``prepare`` and ``serve`` are what ``ktstr sched run`` calls; tests and benchmarks use
``ktstr.testing.ServiceThread`` which does the same in a thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator

import uvicorn

from ktstr.errors import InfraError
from ktstr.service.app import create_app
from ktstr.service.context import ServiceContext
from ktstr.service.db.engine import Database
from ktstr.service.db.jobs import touch_workers
from ktstr.service.db.sutclasses import sync_sutclasses
from ktstr.service.db.users import ensure_admin
from ktstr.service.settings import Settings
from ktstr.service.sutclasses import load_sutclasses

log = logging.getLogger(__name__)

ADMIN_BANNER = "Created default admin user 'admin' with token: {token}"


def prepare(settings: Settings, db: Database) -> str | None:
    """Migrate, load SUT classes (refusing to start on any error), create the first
    admin. Returns the new admin's token on the first start, else None."""
    classes = load_sutclasses(settings.sutclasses)
    db.migrate()
    now = time.time()
    sync_sutclasses(db, classes, now)
    touch_workers(db, now)
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


def make_server(ctx: ServiceContext, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(create_app(ctx), log_level=log_level, log_config=None,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=2,
                            # idle keep-alive connections stay open this long; at uvicorn's
                            # 5 s default, busy clients reuse sockets the server just closed
                            timeout_keep_alive=75)
    return uvicorn.Server(config)
