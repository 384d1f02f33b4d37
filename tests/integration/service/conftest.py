"""Fixtures for the service tests: a real SQLite file or a real PostgreSQL (started
here, once per session and xdist worker, on 127.0.0.1), and the service over real HTTP."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ktstr.service.settings import Settings
from ktstr.testing import ServiceThread

PG_BIN = Path("/usr/lib/postgresql/15/bin")

SUTCLASSES = """\
- sutclass: demo
  type: static
  params:
    suts:
{demo}
- sutclass: other
  type: static
  params:
    suts:
      - name: other-01
        connection: {{method: SSH, params: {{host: other-01}}}}
"""


def write_sutclasses(path: Path, demo_suts: int = 4) -> Path:
    demo = "\n".join(
        f"      - name: demo-{i:02d}\n        connection: {{method: SSH, params: "
        f"{{host: demo-{i:02d}, user: fpuser}}}}" for i in range(1, demo_suts + 1))
    path.write_text(SUTCLASSES.format(demo=demo))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1, stopped at the end of the session."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}); run scripts/setup.sh")
    root = Path(tempfile.mkdtemp(prefix="ktstr-pg-"))
    root.chmod(0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust",
                                 "-U", "postgres", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400")
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                 str(root / "server.log"), "-w", "-t", "60", "-o", opts,
                                 "start"]), check=True, capture_output=True)
    try:
        yield PgServer(port)
    finally:
        subprocess.run(  # noqa: PLW1510 (best effort at teardown)
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                          "-t", "60", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: PgServer) -> Iterator[str]:
    """A fresh database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.admin(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.db)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scheduler.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def sutclasses_file(tmp_path: Path) -> Path:
    return write_sutclasses(tmp_path / "sutclasses.yaml")


ServiceFactory = Callable[..., contextlib.AbstractContextManager[ServiceThread]]


@pytest.fixture
def make_service(db_url: str, tmp_path: Path, sutclasses_file: Path) -> ServiceFactory:
    """``with make_service(heartbeat_timeout_s=1) as svc:`` (settings overrides)."""

    def make(**overrides: Any) -> contextlib.AbstractContextManager[ServiceThread]:
        fields: dict[str, Any] = {"database_url": db_url, "storage": tmp_path / "storage",
                                  "sutclasses": sutclasses_file, "reaper_interval_s": 0.1}
        fields.update(overrides)
        return ServiceThread(Settings(**fields))

    return make


@pytest.fixture
def service(make_service: ServiceFactory) -> Iterator[ServiceThread]:
    with make_service() as svc:
        yield svc
