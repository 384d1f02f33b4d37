"""Reports: a worker's job started, and its result, recorded in one statement on the
common path (the job is the worker's at that attempt) and through the ORM otherwise,
which names what is wrong. A result closes its plan when it was the plan's last live job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from ktstr.results.model import Verdict
from ktstr.service.auth import Principal
from ktstr.service.db.engine import Database, HotCursor, HotSql
from ktstr.service.db.jobs import (
    UNFINISHED,
    WorkerRef,
    batch_rounds,
    held_job,
    json_value,
    move_job,
    sql_in,
    worker_for,
)
from ktstr.service.db.plans import close_plan_if_done
from ktstr.service.schemas import JobResultIn, JobStart
from ktstr.service.states import JOB_TRANSITIONS, PLAN_TRANSITIONS, JobState, PlanState, sources

#: states the result's statements read, from the transition tables
_LIVE = sql_in(UNFINISHED)
_PLAN_CLOSABLE = sql_in(sources(PLAN_TRANSITIONS, PlanState.COMPLETED))


_START = HotSql(f"""
UPDATE jobs SET state = '{JobState.RUNNING.value}', started_at = :now
WHERE id = :id AND worker_id = :wid AND attempt = :attempt
  AND state IN ({sql_in(sources(JOB_TRANSITIONS, JobState.RUNNING))})""")


def start(db: Database, who: Principal, job_id: int, req: JobStart, now: float,
          worker: WorkerRef | None = None) -> None:
    """The worker began running the job: one statement when ``worker`` (the caller's
    cached row) is given and the job is the worker's, the ORM path otherwise (it names
    what is wrong)."""
    if worker is not None and worker.name == req.worker:
        who.require_owner(worker.owner_id, f"worker {worker.name!r}")
        with db.hot() as cur:
            done = cur.execute(_START, {"id": job_id, "wid": worker.id,
                                        "attempt": req.attempt, "now": now}).rowcount
        if done == 1:
            return
    with db.write() as s:
        w = worker_for(s, req.worker, who)
        job = held_job(s, db, job_id, w, req.attempt)
        move_job(job, JobState.RUNNING)
        job.started_at = now


#: what the result's kept record needs besides the report itself, returned by the
#: result's own statement (``RecordFacts``): the job's plan and cell, and the plan's
#: publish flag, owner and SUT class (a second read per result cost more than the update)
_RECORD_FACTS = """plan_id, cell,
    (SELECT p.publish FROM plans p WHERE p.id = jobs.plan_id) AS publish,
    (SELECT u.name FROM plans p JOIN users u ON u.id = p.owner_id
     WHERE p.id = jobs.plan_id) AS owner,
    (SELECT c.name FROM plans p JOIN sutclasses c ON c.id = p.sutclass_id
     WHERE p.id = jobs.plan_id) AS sutclass"""

def _finish_sql(to: JobState, json_param: str) -> str:
    """The result's UPDATE; ``json_param`` wraps a JSON text parameter for the dialect."""
    return f"""
UPDATE jobs SET state = '{to.value}', outcome = :outcome,
       reasons = {json_param.format("reasons")}, result = {json_param.format("result")},
       duration_s = :duration, finished_at = :now,
       started_at = COALESCE(started_at, :now - :duration), log_path = :log_path
WHERE id = :id AND worker_id = :wid AND attempt = :attempt
  AND state IN ({sql_in(sources(JOB_TRANSITIONS, to))})
RETURNING {_RECORD_FACTS}"""


_FINISHED = (JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT)
#: SQLite: the result, then the plan's close in a second statement of the transaction
_FINISH = {to: HotSql(_finish_sql(to, ":{}")) for to in _FINISHED}
#: PostgreSQL: the result and the plan's close in one statement (a data-modifying CTE;
#: its plan check runs on the statement's snapshot, hence ``id <> :id``)
_FINISH_PG = {to: HotSql(f"""
WITH done AS (
    {_finish_sql(to, "CAST(:{} AS JSON)").strip()}
), closed AS (
    UPDATE plans SET completed_at = :now,
           state = CASE WHEN state IN ({_PLAN_CLOSABLE})
                        THEN '{PlanState.COMPLETED.value}' ELSE state END
    WHERE id = (SELECT plan_id FROM done) AND completed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE plan_id = (SELECT plan_id FROM done)
                      AND id <> :id AND state IN ({_LIVE}))
)
SELECT * FROM done""") for to in _FINISHED}
#: close the plan when this job was its last unfinished one (the job is excluded by id:
#: on PostgreSQL the statement may not see the job's own update yet)
_CLOSE_PLAN = HotSql(f"""
UPDATE plans SET completed_at = :now,
       state = CASE WHEN state IN ({_PLAN_CLOSABLE}) THEN '{PlanState.COMPLETED.value}'
                    ELSE state END
WHERE id = :plan AND completed_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE plan_id = :plan AND id <> :id
                  AND state IN ({_LIVE}))""")


class RecordFacts(NamedTuple):
    """What a result's kept record needs besides the report (``ktstr.service.publish``),
    as the result's own statement returned it. (A tuple: built for every result.)"""

    plan_id: int
    #: the job's cell as stored (``Cell.model_dump(mode="json")`` at submit)
    cell: dict[str, Any]
    publish: bool
    owner: str
    sutclass: str
    worker: str
    #: the time the statement recorded as the job's end
    finished_at: float


class Finished(NamedTuple):
    """A recorded result: the job's new state, and the record facts when the one-statement
    path recorded it (None: the general path; the record is read back)."""

    state: JobState
    facts: RecordFacts | None = None


def _finish_state(res: JobResultIn) -> JobState:
    if res.timed_out:
        return JobState.TIMED_OUT
    return JobState.FAILED if res.failed else JobState.COMPLETED


def finish(db: Database, who: Principal, job_id: int, res: JobResultIn, logs_dir: Path,
           now: float, worker: WorkerRef | None = None) -> JobState:
    """Record a worker's result (``finish_result``); the job's new state."""
    return finish_result(db, who, job_id, res, logs_dir, now, worker).state


def finish_result(db: Database, who: Principal, job_id: int, res: JobResultIn,
                  logs_dir: Path, now: float, worker: WorkerRef | None = None) -> Finished:
    """Record a worker's result: one statement (PostgreSQL; two on SQLite) when ``worker``
    (the caller's cached row) is given and the job is the worker's, the ORM path
    otherwise."""
    if worker is not None and worker.name == res.worker:
        who.require_owner(worker.owner_id, f"worker {worker.name!r}")
        log_path = keep_log(job_id, res, logs_dir)
        with db.hot() as cur:
            done = _finish_fast(db, cur, job_id, res, log_path, now, worker)
        if done is not None:
            return done
    return _finish_general(db, who, job_id, res, logs_dir, now)


class ResultAsk(NamedTuple):
    """One worker's result in a batch (``finish_batch_async``)."""

    job_id: int
    report: JobResultIn
    worker: WorkerRef
    #: where its log was kept (``keep_log``), None without one
    log_path: str | None


def _finish_many_pg() -> HotSql:
    """PostgreSQL: several results in one statement (``_FINISH_PG`` for many jobs, each
    with its own target state), and the close of every plan whose last live job that
    was."""
    guard = " ".join(f"WHEN '{to.value}' THEN jobs.state IN "
                     f"({sql_in(sources(JOB_TRANSITIONS, to))})" for to in _FINISHED)
    return HotSql(f"""
WITH r AS (
    SELECT * FROM unnest(CAST(:ids AS BIGINT[]), CAST(:wids AS BIGINT[]),
                         CAST(:attempts AS INTEGER[]), CAST(:states AS TEXT[]),
                         CAST(:outcomes AS TEXT[]), CAST(:reasons AS TEXT[]),
                         CAST(:results AS TEXT[]), CAST(:durations AS FLOAT8[]),
                         CAST(:log_paths AS TEXT[]))
        AS r(id, wid, attempt, state, outcome, reasons, result, duration, log_path)
), done AS (
    UPDATE jobs SET state = r.state, outcome = r.outcome,
           reasons = CAST(r.reasons AS JSON), result = CAST(r.result AS JSON),
           duration_s = r.duration, finished_at = :now,
           started_at = COALESCE(jobs.started_at, :now - r.duration),
           log_path = r.log_path
    FROM r WHERE jobs.id = r.id AND jobs.worker_id = r.wid AND jobs.attempt = r.attempt
      AND CASE r.state {guard} ELSE FALSE END
    RETURNING jobs.id, {_RECORD_FACTS}
), closed AS (
    UPDATE plans SET completed_at = :now,
           state = CASE WHEN state IN ({_PLAN_CLOSABLE})
                        THEN '{PlanState.COMPLETED.value}' ELSE state END
    WHERE id IN (SELECT plan_id FROM done) AND completed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.plan_id = plans.id
                      AND j.id NOT IN (SELECT id FROM done) AND j.state IN ({_LIVE}))
)
SELECT * FROM done""")


_FINISH_MANY_PG = _finish_many_pg()


async def finish_batch_async(db: Database, asks: list[ResultAsk], now: float
                             ) -> list[Finished | None]:
    """``finish_result``'s common case for several results at once, on the event loop
    (``Database.hot_async``), in one transaction: on SQLite a statement pair per result
    inside one ``BEGIN IMMEDIATE``; on PostgreSQL one statement (``_FINISH_MANY_PG``).
    The caller checked that each report is its worker's (name and owner). None for a
    result the job's state did not take (then ``finish_result`` in a thread names what is
    wrong)."""
    out: list[Finished | None] = [None] * len(asks)
    async with db.hot_async() as cur:
        if db.is_sqlite:
            for i, ask in enumerate(asks):
                to = _finish_state(ask.report)
                row = await cur.first(_FINISH[to], _finish_params(
                    ask.job_id, ask.report, ask.log_path, now, ask.worker))
                if row is not None:
                    await cur.first(_CLOSE_PLAN, {"plan": row[0], "id": ask.job_id,
                                                  "now": now})
                    out[i] = _finished(to, row, ask.worker, now)
            return out
        for rnd in batch_rounds([a.job_id for a in asks]):
            reports = [asks[i].report for i in rnd]
            rows = await cur.all(_FINISH_MANY_PG, {
                "ids": [asks[i].job_id for i in rnd],
                "wids": [asks[i].worker.id for i in rnd],
                "attempts": [r.attempt for r in reports],
                "states": [_finish_state(r).value for r in reports],
                "outcomes": [_outcome(r) for r in reports],
                "reasons": [json.dumps(r.reasons) for r in reports],
                "results": [json.dumps(r.details) for r in reports],
                "durations": [r.duration_s for r in reports],
                "log_paths": [asks[i].log_path for i in rnd], "now": now})
            where = {asks[i].job_id: i for i in rnd}
            for row in rows:
                i = where[row[0]]
                out[i] = _finished(_finish_state(asks[i].report), row[1:], asks[i].worker,
                                   now)
    return out


def keep_log(job_id: int, res: JobResultIn, logs_dir: Path) -> str | None:
    """Write the reported log (before the write transaction); its path, None if empty."""
    if not res.log:
        return None
    log_path = logs_dir / f"job-{job_id}-attempt-{res.attempt}.log"
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path.write_text(res.log)
    return str(log_path)


def _finish_fast(db: Database, cur: HotCursor, job_id: int, res: JobResultIn,
                 log_path: str | None, now: float, worker: WorkerRef) -> Finished | None:
    """The result in one statement if the job is the worker's at that attempt (None:
    nothing changed)."""
    to = _finish_state(res)
    params = _finish_params(job_id, res, log_path, now, worker)
    if db.is_sqlite:
        row = cur.execute(_FINISH[to], params).first()
        if row is not None:
            cur.execute(_CLOSE_PLAN, {"plan": row[0], "id": job_id, "now": now})
    else:
        row = cur.execute(_FINISH_PG[to], params).first()
    return None if row is None else _finished(to, row, worker, now)


def _finish_params(job_id: int, res: JobResultIn, log_path: str | None, now: float,
                   worker: WorkerRef) -> dict[str, Any]:
    return {"id": job_id, "wid": worker.id, "attempt": res.attempt, "now": now,
            "outcome": _outcome(res), "reasons": json.dumps(list(res.reasons)),
            "result": json.dumps(dict(res.details)), "duration": res.duration_s,
            "log_path": log_path}


def _finished(to: JobState, row: Any, worker: WorkerRef, now: float) -> Finished:
    plan_id, cell, publish, owner, sutclass = row
    return Finished(to, RecordFacts(plan_id, json_value(cell), bool(publish), owner,
                                    sutclass, worker.name, now))


def _outcome(res: JobResultIn) -> str | None:
    return None if res.timed_out else (res.outcome or Verdict.ERROR).value


def _finish_general(db: Database, who: Principal, job_id: int, res: JobResultIn,
                    logs_dir: Path, now: float) -> Finished:
    log_path = logs_dir / f"job-{job_id}-attempt-{res.attempt}.log"
    with db.write() as s:
        w = worker_for(s, res.worker, who)
        job = held_job(s, db, job_id, w, res.attempt)
        move_job(job, _finish_state(res))
        job.outcome = _outcome(res)
        job.reasons = list(res.reasons)
        job.result = dict(res.details)
        job.duration_s = res.duration_s
        job.finished_at = now
        if job.started_at is None:
            job.started_at = now - res.duration_s
        if res.log:
            logs_dir.mkdir(parents=True, exist_ok=True)
            log_path.write_text(res.log)
            job.log_path = str(log_path)
        close_plan_if_done(s, job.plan_id, now)
        return Finished(state=JobState(job.state))
