"""``ServiceThread``: the scheduler service on 127.0.0.1 in a thread, as a context manager.

The service's modules (FastAPI, SQLAlchemy, uvicorn; the ``service`` extra) are imported
when the thread starts, not when this module is imported.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ktstr.errors import InfraError

if TYPE_CHECKING:
    from ktstr.service.settings import Settings


class ServiceThread:
    """``with ServiceThread(settings) as svc:`` serves on ``svc.url``; ``svc.admin_token``
    holds the first-start admin token (None when the database already had users)."""

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 0,
                 start_timeout_s: float = 20.0, primary: bool = True,
                 relay_wakeups: bool = False) -> None:
        """``primary``/``relay_wakeups``: as ``ServiceContext``'s (several services on
        one PostgreSQL database, as ``ktstr sched run --workers N`` runs them)."""
        self.settings = settings
        self.primary, self.relay_wakeups = primary, relay_wakeups
        self.host, self.port = host, port
        self.start_timeout_s = start_timeout_s
        self.admin_token: str | None = None
        self.url = ""

    def __enter__(self) -> ServiceThread:
        from ktstr.service.context import ServiceContext
        from ktstr.service.db.engine import Database
        from ktstr.service.server import listening_socket, make_server, prepare

        self._db = Database(self.settings.database_url)
        self._sock_cm = listening_socket(self.host, self.port)
        try:
            sock = self._sock_cm.__enter__()  # bind first, as ``ktstr sched run`` does
            self.admin_token = prepare(self.settings, self._db)
            self.ctx = ServiceContext(settings=self.settings, db=self._db,
                                      primary=self.primary,
                                      relay_wakeups=self.relay_wakeups)
            self._server = make_server(self.ctx)
            self.port = sock.getsockname()[1]
            self.url = f"http://{self.host}:{self.port}"
            self._thread = threading.Thread(target=self._server.run,
                                            kwargs={"sockets": [sock]}, daemon=True,
                                            name="ktstr-service")
            self._thread.start()
            deadline = time.monotonic() + self.start_timeout_s
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise InfraError(f"the service did not start on {self.url} within "
                                     f"{self.start_timeout_s:g}s")
                time.sleep(0.01)
        except BaseException:
            self._sock_cm.__exit__(None, None, None)
            self._db.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self._sock_cm.__exit__(None, None, None)
        self._db.close()
