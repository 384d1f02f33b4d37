"""Human tables of service objects (pure): what ``ktstr sched`` prints without --json."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ktstr.service.plan import format_duration
from ktstr.service.schemas import JobOut, PlanOut, SutClassOut, WorkerOut


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


PLAN_HEADERS = ["ID", "OWNER", "SUTCLASS", "PRIORITY", "PROGRESS", "STATUS", "QUEUED",
                "STARTED", "COMPLETED", "ETA"]


def plan_rows(plans: Sequence[PlanOut]) -> list[list[str]]:
    return [[str(p.id), p.owner, p.sutclass, str(p.priority),
             f"{p.completed_jobs}/{p.total_jobs}", p.state.value, when(p.queued_at),
             when(p.started_at), when(p.completed_at),
             "-" if not p.eta_s else format_duration(p.eta_s)]
            for p in plans]


SUTCLASS_HEADERS = ["ID", "NAME", "ENABLED", "USAGE", "CREATED"]


def sutclass_rows(classes: Sequence[SutClassOut]) -> list[list[str]]:
    rows = []
    for c in classes:
        usage = (f"{c.suts_in_use}/{c.suts_total}" if c.usage is None
                 else f"{c.usage * 100:.1f}%")
        rows.append([str(c.id), c.name, "yes" if c.enabled else "no", usage,
                     when(c.created_at)])
    return rows


JOB_HEADERS = ["ID", "CELL", "STATE", "OUTCOME", "TRY", "WORKER", "DURATION", "REASONS"]


def job_rows(jobs: Sequence[JobOut]) -> list[list[str]]:
    return [[str(j.id), j.cell.key, j.state.value, j.outcome.value if j.outcome else "-",
             str(j.attempt), j.worker or "-",
             "-" if j.duration_s is None else f"{j.duration_s:.1f}s",
             "; ".join(j.reasons) or "-"] for j in jobs]


WORKER_HEADERS = ["NAME", "SUTCLASS", "OWNER", "STATE", "JOB", "LAST HEARTBEAT", "VERSION"]


def worker_rows(workers: Sequence[WorkerOut]) -> list[list[str]]:
    return [[w.name, w.sutclass, w.owner, w.state.value, str(w.job_id or "-"),
             when(w.last_heartbeat), w.version] for w in workers]
