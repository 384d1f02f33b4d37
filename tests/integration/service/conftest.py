"""Fixtures for the service tests: a real SQLite file or a real PostgreSQL (started
here, once per session and xdist worker, on 127.0.0.1), and the service over real HTTP."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ktstr.service.settings import Settings
from ktstr.testing import ServiceThread, TemporaryPostgres

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """A throwaway PostgreSQL 15 on 127.0.0.1 per session (and xdist worker)."""
    with TemporaryPostgres() as pg:
        yield pg


@pytest.fixture
def pg_url(postgres_server: TemporaryPostgres) -> Iterator[str]:
    """A fresh database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


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
