"""The result store: finished jobs published to a SQL database of their own (SQLite or
PostgreSQL), read back by ``ktstr result list|show``.

Its schema is one small table, created on first use; it is independent of the service's
database so a store can outlive (or be shared by) services.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import (
    JSON,
    Float,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    create_engine,
    insert,
    select,
)
from sqlalchemy import Column as Col
from sqlalchemy import Table as SqlTable
from sqlalchemy.exc import IntegrityError, OperationalError

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError
from ktstr.results.model import Verdict
from ktstr.service.db.engine import normalize_url
from ktstr.service.schemas import ts
from ktstr.service.states import JobState

log = logging.getLogger(__name__)

metadata = MetaData()

results_table = SqlTable(
    "ktstr_results", metadata,
    Col("id", Integer, primary_key=True),
    Col("plan_id", Integer, nullable=False, index=True),
    Col("job_id", Integer, nullable=False),
    Col("attempt", Integer, nullable=False),
    Col("owner", String(200), nullable=False),
    Col("sutclass", String(200), nullable=False),
    Col("worker", String(200), nullable=True),
    Col("kind", String(20), nullable=False),
    Col("kernel", String(500), nullable=False, index=True),
    Col("scheduler", String(500), nullable=False, index=True),
    Col("topology", String(100), nullable=False),
    Col("test", String(200), nullable=True),
    Col("state", String(20), nullable=False),
    Col("outcome", String(10), nullable=True),
    Col("reasons", JSON, nullable=False),
    Col("duration_s", Float, nullable=True),
    Col("finished_at", Float, nullable=False),
    Col("details", JSON, nullable=False),
    UniqueConstraint("plan_id", "job_id", "attempt", name="uq_ktstr_results_attempt"),
)


class ResultRecord(Frozen):
    """One published job result."""

    id: int | None = None
    plan_id: int
    job_id: int
    attempt: int
    owner: str
    sutclass: str
    worker: str | None
    kind: str
    kernel: str
    scheduler: str
    topology: str
    test: str | None
    state: JobState
    outcome: Verdict | None
    reasons: list[str] = Field(default_factory=list)
    duration_s: float | None
    finished_at: datetime | None
    details: dict[str, Any] = Field(default_factory=dict)


class ResultQuery(Frozen):
    plan_id: int | None = None
    job_id: int | None = None
    kernel: str | None = None
    scheduler: str | None = None
    limit: int = Field(1000, ge=1)


class ResultStore:
    """Close it (or use ``with``) to release its connections."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = create_engine(self.url)
        try:
            metadata.create_all(self.engine, checkfirst=True)
        except OperationalError as exc:
            self.engine.dispose()
            raise InfraError(f"cannot open the result store "
                             f"{self.url.render_as_string(hide_password=True)}: "
                             f"{exc.orig}") from exc

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def publish(self, record: ResultRecord) -> bool:
        """Store ``record``; False if that attempt was already published."""
        values = record.model_dump(mode="json", exclude={"id"})
        values["finished_at"] = record.finished_at.timestamp() if record.finished_at \
            else 0.0
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(results_table).values(**values))
        except IntegrityError:
            return False
        return True

    def query(self, q: ResultQuery) -> list[ResultRecord]:
        t = results_table
        stmt = select(t).order_by(t.c.id.desc()).limit(q.limit)
        if q.plan_id is not None:
            stmt = stmt.where(t.c.plan_id == q.plan_id)
        if q.job_id is not None:
            stmt = stmt.where(t.c.job_id == q.job_id)
        if q.kernel is not None:
            stmt = stmt.where(t.c.kernel == q.kernel)
        if q.scheduler is not None:
            stmt = stmt.where(t.c.scheduler == q.scheduler)
        with self.engine.connect() as conn:
            return [_record(dict(r._mapping)) for r in conn.execute(stmt)]

    def get(self, result_id: int) -> ResultRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(results_table).where(
                results_table.c.id == result_id)).first()
        return _record(dict(row._mapping)) if row is not None else None


def _record(row: dict[str, Any]) -> ResultRecord:
    row["finished_at"] = ts(row["finished_at"])
    return ResultRecord.model_validate(row)
