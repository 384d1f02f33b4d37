"""The dashboard's plan and job pages, built and rendered from a real run's published
result (``tests/unit/data/run-scx_qmap-error.json``: scx_qmap -e 100 on 7.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ktstr.contract import Cell, CellKind
from ktstr.results.model import Verdict
from ktstr.service.auth import Principal
from ktstr.service.pages import job_page, plan_page
from ktstr.service.render import when
from ktstr.service.resultstore import ResultRecord
from ktstr.service.routes.dashboard import _duration, _env
from ktstr.service.schemas import JobOut, PlanOut
from ktstr.service.states import JobState, PlanState

DATA = Path(__file__).parents[1] / "data" / "run-scx_qmap-error.json"
NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
VIEWER = Principal(id=2, name="viewer", capabilities=[])


def report() -> dict[str, Any]:
    data = json.loads(DATA.read_text())
    assert isinstance(data, dict)
    return data


def cell(scheduler: str, kernel: str = "7.2") -> Cell:
    return Cell(kind=CellKind.TEST, kernel=kernel, scheduler=scheduler,
                topology="1,2,2,1", topology_label="", repeat=1, duration_s=5.0,
                timeout_s=300.0)


def job(job_id: int, c: Cell, state: JobState, outcome: Verdict | None,
        reasons: list[str] | None = None) -> JobOut:
    return JobOut(id=job_id, plan_id=1, seq=job_id, cell=c, state=state, outcome=outcome,
                  reasons=reasons or [], attempt=1, worker="demo-01", submitted_at=NOW,
                  assigned_at=NOW, started_at=NOW, finished_at=NOW, duration_s=21.5)


def record(job_id: int, details: dict[str, Any]) -> ResultRecord:
    r = report()
    return ResultRecord(plan_id=1, job_id=job_id, attempt=1, owner="alice",
                        sutclass="demo", worker="demo-01", kind="test", kernel="7.2",
                        scheduler="scx_qmap", topology="1,2,2,1", test=None,
                        state=JobState.COMPLETED, outcome=Verdict.FAIL,
                        reasons=r["reasons"], duration_s=21.5, finished_at=NOW,
                        details=details)


PLAN = PlanOut(id=1, name="nightly", owner="alice", sutclass="demo", priority=5,
               publish=True, state=PlanState.RUNNING, total_jobs=3, completed_jobs=2,
               job_states={}, outcomes={Verdict.PASS: 1, Verdict.FAIL: 1}, queued_at=NOW,
               started_at=NOW, completed_at=None, eta_s=30.0)
JOBS = [job(1, cell("scx_simple"), JobState.COMPLETED, Verdict.PASS),
        job(2, cell("scx_qmap"), JobState.COMPLETED, Verdict.FAIL),
        job(3, cell("scx_simple", "7.3"), JobState.QUEUED, None)]


def test_plan_page_takes_published_verdicts_and_shows_unfinished_cells_by_state() -> None:
    page = plan_page(PLAN, JOBS, {2: record(2, {"report": report()})}, has_store=True)
    assert [(j.id, j.verdict, j.css, j.published) for j in page.jobs] == [
        (1, "pass", "pass", False), (2, "fail", "fail", True), (3, "queued", "none", False)]
    assert page.published == 1 and "scx_bpf_error" in page.jobs[1].reasons[0]
    m = page.matrix
    assert m.columns == ["7.2 · 1,2,2,1", "7.3 · 1,2,2,1"]
    assert [r.label for r in m.rows] == ["scx_simple", "scx_qmap"]
    assert m.rows[1].cells[0][0].href == "/dashboard/jobs/2"
    assert [(c.label, c.n) for c in m.counts] == [("pass", 1), ("fail", 1), ("queued", 1)]


def test_plan_page_renders_the_matrix_and_the_jobs() -> None:
    page = plan_page(PLAN, JOBS, {2: record(2, {"report": report()})}, has_store=True)
    html = _env().get_template("plan.html.j2").render(
        who=VIEWER, page=page, refresh_s=10, when=when, duration=_duration)
    assert "<h1>Plan 1 nightly</h1>" in html and 'http-equiv="refresh"' in html
    assert "Plan 1: cells by verdict" in html and '<table class="matrix">' in html
    assert '<a class="pill v-fail" href="/dashboard/jobs/2"' in html
    assert '<a class="pill v-none" href="/dashboard/jobs/3" title="job 3">queued</a>' in html
    assert '<tr id="job-2"><td><a href="/dashboard/jobs/2">2</a></td><td>scx_qmap</td>' \
           in html
    assert "1/3 job(s) in the result store" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_job_page_shows_the_run_the_way_the_report_does() -> None:
    page = job_page(JOBS[1], record(2, {"exit_code": 1, "report": report()}),
                    published=True, log_text="$ ktstr run --kernel 7.2 ...\nbooting\n")
    assert page.source == "result store" and page.detail is not None and not page.raw
    html = _env().get_template("job.html.j2").render(
        who=VIEWER, page=page, when=when, duration=_duration)
    assert "<h1>Job 2 of plan 1</h1>" in html
    assert "scx_qmap on 7.2 · 1,2,2,1" in html and "published to the result store" in html
    for part in ('class="pill v-fail">fail</span> FAIL scx_qmap on 7.2.13', '<ul class="reasons">',
                 '<table class="metrics timeline">', "<td>sched_attached</td>",
                 '<div class="logblock debug-dump">', "DEBUG DUMP", "scx_qmap.bpf.c:388",
                 '<div class="logblock sched-log">', '<div class="logblock job-log">',
                 "Job log (the worker&#39;s console)", "booting"):
        assert part in html, part
    assert "refresh" not in html  # a page to read, not to watch


def test_job_page_without_a_run_report_shows_the_raw_result_or_nothing() -> None:
    verifier = job_page(JOBS[0], record(1, {"report": {"verdict": "pass", "cells": []}}),
                        published=False, log_text="")
    assert verifier.detail is None and '"cells": []' in verifier.raw
    assert verifier.source == "service" and verifier.log is None
    queued = job_page(JOBS[2], None, published=False, log_text="")
    html = _env().get_template("job.html.j2").render(
        who=VIEWER, page=queued, when=when, duration=_duration)
    assert queued.source == "" and "none yet" in html and 'id="run"' not in html
