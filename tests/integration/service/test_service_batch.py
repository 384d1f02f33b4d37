"""Batched claims and results (``claim_batch_async``, ``finish_batch_async``) on a real
SQLite and PostgreSQL: a batch claims distinct jobs in priority order, claims for the
uncommon cases get nothing (they take the general path), and a batch of results records
each one once and closes the plan with its last job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_sutclasses

from ktstr.service.auth import Capability, Principal
from ktstr.service.db.claims import NO_JOB, ClaimAsk, HotAssignment, claim_batch_async
from ktstr.service.db.engine import Database
from ktstr.service.db.jobs import WorkerRef, worker_ref
from ktstr.service.db.plans import submit_plan
from ktstr.service.db.reports import ResultAsk, finish_batch_async
from ktstr.service.db.sutclasses import sutclass_ids
from ktstr.service.db.tables import PlanRow
from ktstr.service.db.workers import register
from ktstr.service.planner import expand, parse_plan
from ktstr.service.schemas import ClaimReply, JobResultIn, WorkerRegister
from ktstr.service.server import prepare
from ktstr.service.settings import PROTOCOL_VERSION, Settings
from ktstr.service.states import JobState, PlanState

ADMIN = Principal(id=1, name="admin", capabilities=frozenset(Capability))


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Iterator[tuple[Database, Settings]]:
    settings = Settings(database_url=db_url, storage=tmp_path / "storage",
                        sutclasses=write_sutclasses(tmp_path / "s.yaml", demo_suts=8))
    with Database(db_url) as db:
        prepare(settings, db)
        yield db, settings


def _submit(db: Database, jobs: int, priority: int = 0) -> int:
    plan = parse_plan({"sut": {"sutclass": "demo"},
                       "runs": [{"kernels": ["7.2"], "schedulers": ["scx_simple"],
                                 "topologies": ["1,1,2,1"], "repeats": jobs}]})
    classes = sutclass_ids(db)
    return submit_plan(db, ADMIN, plan, expand(plan, classes), classes["demo"], priority,
                       False, time.time())


def _workers(db: Database, settings: Settings, n: int) -> list[tuple[WorkerRef, int]]:
    out = []
    for i in range(1, n + 1):
        name = f"demo-{i:02d}"
        session = register(db, ADMIN, WorkerRegister(
            name=name, sutclass="demo", version="test", protocol=PROTOCOL_VERSION),
            settings, time.time()).session
        out.append((worker_ref(db, name), session))
    return out


def _run(db: Database, coro: Any) -> Any:
    """``coro`` on a loop of its own (closing the hot connections it opened there)."""
    async def go() -> Any:
        try:
            return await coro
        finally:
            await db.aclose_hot()

    return asyncio.run(go())


def test_a_batch_claims_distinct_jobs_in_priority_order(
        db: tuple[Database, Settings]) -> None:
    d, settings = db
    low = _submit(d, 3)
    high = _submit(d, 2, priority=5)
    workers = _workers(d, settings, 6)
    asks = [ClaimAsk(ref, session) for ref, session in workers]
    got = _run(d, claim_batch_async(d, asks, settings, time.time()))
    jobs = [a for a in got if isinstance(a, HotAssignment)]
    # 5 jobs for 6 asks: the last one is told there is nothing now (no general path)
    assert len(jobs) == 5 and got[5] is NO_JOB
    assert len({a.job_id for a in jobs}) == 5
    # the first asks get the high-priority plan's jobs, then the oldest of the other
    assert [a.plan_id for a in jobs] == [high, high, low, low, low]
    assert all(a.attempt == 1 for a in jobs)
    # the reply is the ClaimReply of the job, the cell as stored
    first = got[0]
    assert isinstance(first, HotAssignment)
    assert ClaimReply.model_validate_json(first.reply_json()).job == first.assignment()
    assert first.assignment().cell.scheduler == "scx_simple"
    assert first.assignment().timeout_s == pytest.approx(first.timeout_s)


def test_claims_outside_the_common_case_get_nothing(db: tuple[Database, Settings]) -> None:
    d, settings = db
    _submit(d, 10)
    (w1, s1), (w2, s2), (w3, s3) = _workers(d, settings, 3)
    now = time.time()
    held = _run(d, claim_batch_async(d, [ClaimAsk(w1, s1)], settings, now))
    assert held[0] is not None
    got = _run(d, claim_batch_async(d, [
        ClaimAsk(w1, s1),  # holds a job already
        ClaimAsk(w2, s2 + 1),  # a replaced session
        ClaimAsk(w3, s3), ClaimAsk(w3, s3),  # twice in one batch: one job
    ], settings, now))
    assert got[0] is None and got[1] is None  # the general path sorts these out
    assert {type(got[2]), type(got[3])} == {HotAssignment, type(None)}


def test_a_batch_of_results_records_each_once_and_closes_the_plan(
        db: tuple[Database, Settings]) -> None:
    d, settings = db
    plan = _submit(d, 4)
    workers = _workers(d, settings, 4)
    now = time.time()
    claimed = _run(d, claim_batch_async(d, [ClaimAsk(r, s) for r, s in workers], settings,
                                     now))
    asks = [ResultAsk(a.job_id, JobResultIn(worker=r.name, attempt=a.attempt,
                                            outcome="pass", duration_s=1.0), r, None)
            for a, (r, _s) in zip(claimed, workers, strict=True)
            if isinstance(a, HotAssignment)]
    assert len(asks) == 4
    wrong = ResultAsk(asks[0].job_id, asks[0].report.model_copy(update={"attempt": 9}),
                      asks[0].worker, None)
    first = _run(d, finish_batch_async(d, [*asks[:3], wrong], now + 1))
    assert [f.state if f else None for f in first] == [JobState.COMPLETED] * 3 + [None]
    facts = first[0].facts if first[0] else None
    assert facts is not None and facts.plan_id == plan and facts.owner == "admin"
    assert facts.cell["scheduler"] == "scx_simple" and facts.finished_at == now + 1
    again = _run(d, finish_batch_async(d, [asks[0], asks[3]], now + 2))
    assert again[0] is None  # recorded already
    assert again[1] is not None and again[1].state is JobState.COMPLETED
    with d.read() as s:
        row = s.get(PlanRow, plan)
        assert row is not None and row.state == PlanState.COMPLETED.value
