"""``Database``: the engines, transactions and migrations for one database URL.

SQLite runs in WAL mode with one writer: every write transaction starts with
``BEGIN IMMEDIATE`` (taking the write lock up front, so two claims can never interleave)
and writers in this process also queue on a lock instead of spinning in SQLite's busy
handler. PostgreSQL uses ordinary transactions; claims there lock rows with
``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from ktstr.errors import InfraError, UserError
from ktstr.extras import need_extra

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
    if url.get_backend_name() == "postgresql":
        need_extra("postgres", "a PostgreSQL database")
    return url


SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                  "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=30000")


def libpq_url(url: URL) -> str:
    """A PostgreSQL URL as a libpq connection string for psycopg itself (pure)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class HotSql:
    """A hot-path statement in both drivers' parameter styles: written with ``:name``
    (sqlite3's own), rewritten to ``%(name)s`` for psycopg."""

    def __init__(self, sqlite: str, postgres: str | None = None) -> None:
        self.sqlite = sqlite
        text = sqlite if postgres is None else postgres
        if "%" in text:
            raise ValueError("a HotSql statement may not contain '%'")
        self.postgres = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", text)


class HotCursor:
    """A DBAPI cursor that runs ``HotSql`` in its driver's style."""

    def __init__(self, raw: Any, *, postgres: bool) -> None:
        self.raw = raw
        self.postgres = postgres

    def execute(self, stmt: HotSql, params: dict[str, Any]) -> HotCursor:
        self.raw.execute(stmt.postgres if self.postgres else stmt.sqlite, params)
        return self

    def first(self) -> Any:
        return self.raw.fetchone()

    @property
    def rowcount(self) -> int:
        return int(self.raw.rowcount)


class AsyncHotCursor:
    """``HotCursor`` on a psycopg async cursor (PostgreSQL)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    async def first(self, stmt: HotSql, params: dict[str, Any]) -> Any:
        await self.raw.execute(stmt.postgres, params)
        return await self.raw.fetchone()

    async def all(self, stmt: HotSql, params: dict[str, Any]) -> list[Any]:
        await self.raw.execute(stmt.postgres, params)
        return list(await self.raw.fetchall())


class _SqliteOnLoop:
    """``AsyncHotCursor``'s interface on the SQLite hot cursor (run in place)."""

    def __init__(self, cur: HotCursor) -> None:
        self.cur = cur

    async def first(self, stmt: HotSql, params: dict[str, Any]) -> Any:
        return self.cur.execute(stmt, params).first()

    async def all(self, stmt: HotSql, params: dict[str, Any]) -> list[Any]:
        return list(self.cur.execute(stmt, params).raw.fetchall())


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class _AsyncTurn:
    """A ``FairLock`` waiter on an event loop: ``set`` (from any thread) hands it the
    slot; a waiter cancelled meanwhile passes the slot on."""

    def __init__(self, lock: FairLock, loop: asyncio.AbstractEventLoop) -> None:
        self.lock = lock
        self.loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()

    def set(self) -> None:
        self.loop.call_soon_threadsafe(self._grant)

    def _grant(self) -> None:
        if self.fut.cancelled():
            self.lock.__exit__()
        else:
            self.fut.set_result(None)


class FairLock:
    """A FIFO semaphore of ``slots`` holders: a leaving holder hands its slot straight to
    the longest waiter, so no writer starves behind newer ones (``threading.Lock`` makes
    no such promise, which showed as second-long tail latencies with 200 claimers).
    Threads wait in ``with``; coroutines in ``await enter_async()`` (then ``__exit__``),
    without blocking their event loop."""

    def __init__(self, slots: int = 1) -> None:
        self._mutex = threading.Lock()
        self._free = slots
        self._waiters: collections.deque[threading.Event | _AsyncTurn] = collections.deque()

    def __enter__(self) -> None:
        with self._mutex:
            if self._free > 0:
                self._free -= 1
                return
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # the slot was handed over by __exit__

    async def enter_async(self) -> None:
        with self._mutex:
            if self._free > 0:
                self._free -= 1
                return
            turn = _AsyncTurn(self, asyncio.get_running_loop())
            self._waiters.append(turn)
        try:
            await turn.fut
        except asyncio.CancelledError:
            with self._mutex:
                queued = turn in self._waiters
                if queued:
                    self._waiters.remove(turn)
            if not queued and turn.fut.done() and not turn.fut.cancelled():
                self.__exit__()  # granted, then cancelled before it resumed: pass it on
            # otherwise not queued: the slot is on its way (``_grant`` passes it on)
            raise

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._free += 1


#: PostgreSQL: hot-path statements in flight at once from one process. More only adds
#: backends and Python threads competing for the same few cores (200 at once measured
#: slower, with second-long tails); waiters queue in FIFO order instead.
PG_HOT_SLOTS = 8


class Database:
    """Owns the engines of one database; close it (or use ``with``) to release them."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # no pre-ping: it costs a round trip per checkout on the claim path; a connection
        # the server dropped fails its statement, which invalidates the pool
        kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 2 * pool_size}
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
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            FairLock() if self.is_sqlite else contextlib.nullcontext()
        )
        self._hot_gate = FairLock(PG_HOT_SLOTS)
        self._hot_lock = threading.Lock()
        self._hot_pg: list[Any] = []  # idle psycopg connections of ``hot``
        self._hot_sqlite: Any = None  # the sqlite3 connection of ``hot``
        self._hot_async: list[Any] = []  # idle psycopg async connections of ``hot_async``
        self._async_gate: asyncio.Semaphore | None = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()
        if self._hot_sqlite is not None:
            self._hot_sqlite.close()
            self._hot_sqlite = None
        with self._hot_lock:
            while self._hot_pg:
                self._hot_pg.pop().close()

    @property
    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
        with (self._write_lock, Session(self._write_engine, expire_on_commit=False) as s,
              s.begin()):
            yield s

    @contextlib.asynccontextmanager
    async def hot_async(self) -> AsyncIterator[AsyncHotCursor | _SqliteOnLoop]:
        """``hot()`` for the event loop, without a thread hand-off. PostgreSQL: psycopg's
        async connections (at most ``PG_HOT_SLOTS`` in flight per loop, FIFO; the pool
        belongs to the loop of the first call, ``aclose_hot`` closes it there): the
        statement waits for the server without blocking the loop. SQLite: the loop
        waits for the writer lock without blocking (``FairLock.enter_async``), then runs
        the transaction itself: a hot-path statement takes ~0.1 ms and does not fsync
        (WAL, ``synchronous=NORMAL``; only an occasional WAL checkpoint does)."""
        if self.is_sqlite:
            lock = self._write_lock
            assert isinstance(lock, FairLock)
            await lock.enter_async()
            try:
                with self._sqlite_transaction() as cur:
                    yield _SqliteOnLoop(cur)
            finally:
                lock.__exit__()
            return
        if self._async_gate is None:
            self._async_gate = asyncio.Semaphore(PG_HOT_SLOTS)
        async with self._async_gate:
            conn = self._hot_async.pop() if self._hot_async else None
            if conn is None:
                import psycopg

                conn = await psycopg.AsyncConnection.connect(libpq_url(self.url),
                                                             autocommit=True)
            try:
                async with conn.cursor() as raw:
                    yield AsyncHotCursor(raw)
            except BaseException:
                if conn.broken or conn.closed:
                    await conn.close()
                    raise
                self._hot_async.append(conn)
                raise
            self._hot_async.append(conn)

    async def aclose_hot(self) -> None:
        """Close ``hot_async``'s connections (on their loop)."""
        while self._hot_async:
            await self._hot_async.pop().close()
        self._async_gate = None

    @contextlib.contextmanager
    def hot(self) -> Iterator[HotCursor]:
        """A DBAPI cursor for the hot path's one-statement writes (claim, start, result),
        past SQLAlchemy's execution layer: its Python cost per statement (compiled-cache
        lookup, parameter processing, result wrapping) was as large as the statement's.
        Statements are ``HotSql``. SQLite: one connection of its own behind the
        in-process writer queue, in one ``BEGIN IMMEDIATE`` transaction committed on
        success. PostgreSQL: autocommit connections, at most ``PG_HOT_SLOTS`` in flight
        (each statement is its own transaction, one round trip; the statements lock
        their rows themselves, ``FOR UPDATE SKIP LOCKED``)."""
        if self.is_sqlite:
            with self._write_lock, self._sqlite_transaction() as cur:
                yield cur
            return
        with self._hot_gate:
            with self._hot_lock:
                conn = self._hot_pg.pop() if self._hot_pg else None
            if conn is None:
                conn = self._pg_connect()
            try:
                with conn.cursor() as raw:
                    yield HotCursor(raw, postgres=True)
            except BaseException:
                if conn.broken or conn.closed:
                    conn.close()
                    raise
                with self._hot_lock:
                    self._hot_pg.append(conn)
                raise
            with self._hot_lock:
                self._hot_pg.append(conn)

    @contextlib.contextmanager
    def _sqlite_transaction(self) -> Iterator[HotCursor]:
        """A ``BEGIN IMMEDIATE`` transaction on the hot connection (writer lock held)."""
        if self._hot_sqlite is None:
            self._hot_sqlite = self._sqlite_connect()
        cur = HotCursor(self._hot_sqlite.cursor(), postgres=False)
        cur.raw.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.raw.execute("ROLLBACK")
            raise
        cur.raw.execute("COMMIT")

    def _sqlite_connect(self) -> Any:
        import sqlite3

        conn = sqlite3.connect(self.url.database or "", timeout=30,
                               check_same_thread=False, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        return conn

    def _pg_connect(self) -> Any:
        import psycopg

        return psycopg.connect(libpq_url(self.url), autocommit=True)

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
