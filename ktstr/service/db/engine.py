"""``Database``: the engines, transactions and migrations for one database URL.

SQLite runs in WAL mode with one writer: every write transaction starts with
``BEGIN IMMEDIATE`` (taking the write lock up front, so two claims can never interleave)
and writers in this process also queue on a lock instead of spinning in SQLite's busy
handler. PostgreSQL uses ordinary transactions; claims there lock rows with
``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from ktstr.errors import InfraError, UserError

log = logging.getLogger(__name__)

_IMMEDIATE = "ktstr_begin_immediate"


def normalize_url(text: str) -> URL:
    """``postgresql://`` and ``postgres://`` use psycopg 3; ``sqlite:///`` stays."""
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise UserError(f"bad database URL {text!r}: use sqlite:///PATH or "
                        "postgresql://USER@HOST:PORT/DB") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(f"unsupported database {url.get_backend_name()!r}: "
                        "use sqlite:///PATH or postgresql://...")
    return url


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class FairLock:
    """A FIFO lock: the holder hands it straight to the longest waiter, so no writer
    starves behind newer ones (``threading.Lock`` makes no such promise, which showed as
    second-long tail latencies with 200 claimers)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locked = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def __enter__(self) -> None:
        with self._mutex:
            if not self._locked:
                self._locked = True
                return
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # ownership was handed over by __exit__

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._locked = False


class Database:
    """Owns the engines of one database; close it (or use ``with``) to release them."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 2 * pool_size,
                                  "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            db_path = self.url.database
            if not db_path or db_path == ":memory:":
                raise UserError("use a SQLite file (sqlite:///PATH): the service, its "
                                "workers and restarts share it")
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _sqlite_setup(self.engine)
        self._write_engine = self.engine.execution_options(**{_IMMEDIATE: True})
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            FairLock() if self.is_sqlite else contextlib.nullcontext()
        )

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
        with (self._write_lock, Session(self._write_engine, expire_on_commit=False) as s,
              s.begin()):
            yield s

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    def migrate(self) -> None:
        """Bring the schema to the newest migration."""
        from ktstr.service import migrations

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise InfraError(f"cannot migrate database {self.describe}: {exc.orig}") from exc
        log.info("database schema is current", extra={"action": "migrate"})
