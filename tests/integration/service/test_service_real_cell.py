"""One real cell through the service: a pull worker process with the real KtstrRunner
boots kernel 7.2 in QEMU with scx_simple, and the verdict reaches the result store."""

from __future__ import annotations

from pathlib import Path

import pytest
from procs import KTSTR, Proc
from svchelpers import admin, wait_until

from ktstr.service.resultstore import ResultQuery, ResultStore
from ktstr.service.settings import Settings
from ktstr.service.states import JobState, Outcome, PlanState
from ktstr.testing import ServiceThread


@pytest.mark.vm
def test_real_cell_completes_and_is_published(tmp_path: Path, sutclasses_file: Path
                                              ) -> None:
    store = f"sqlite:///{tmp_path / 'results.db'}"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'scheduler.db'}",
                        storage=tmp_path / "storage", sutclasses=sutclasses_file,
                        resultstore=store, timeout_slack_s=60)
    plan_doc = {"sut": {"sutclass": "demo"},
                "runs": [{"kernels": ["7.2"], "schedulers": ["scx_simple"],
                          "topologies": ["1,2,2,1"]}],
                "defaults": {"timeout": "5m", "duration": "5s"}}
    with ServiceThread(settings) as svc, admin(svc) as a:
        assert svc.admin_token
        plan = a.submit_plan(plan_doc)
        with Proc([*KTSTR, "-v", "sched", "worker", "--sutclass", "demo", "--name",
                   "demo-01", "--url", svc.url, "--token", svc.admin_token,
                   "--runner", "ktstr", "--max-jobs", "1", "--claim-wait", "1",
                   "--state-dir", str(tmp_path / "worker")], tmp_path / "worker.log") as w:
            done = wait_until(lambda: a.plan(plan.id).state is PlanState.COMPLETED
                              or not w.alive(), 420, "the real cell to finish", interval=1)
            assert done, w.output()
        job = a.jobs(plan.id)[0]
        log = a.job_log(job.id)
        assert job.state is JobState.COMPLETED, (job, log[-3000:], w.output()[-3000:])
        assert job.outcome is Outcome.PASS, (job.reasons, log[-3000:])
        assert "ktstr run --kernel 7.2 --scheduler scx_simple --topology 1,2,2,1 " \
               "--duration 5s --json" in log
    with ResultStore(store) as rs:
        rows = rs.query(ResultQuery(plan_id=plan.id))
    assert [(r.job_id, r.outcome, r.kernel, r.scheduler, r.topology) for r in rows] == [
        (job.id, Outcome.PASS, "7.2", "scx_simple", "1,2,2,1")]
    assert rows[0].details["report"]["verdict"].lower() == "pass"
    kept = settings.results_dir / f"job-{job.id}" / "attempt-1"
    assert (kept / "result.json").is_file() and (kept / "console.log").stat().st_size > 0
