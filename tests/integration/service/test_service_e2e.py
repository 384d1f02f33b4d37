"""End to end: ``ktstr sched run`` and ``ktstr sched worker`` as processes (scripted
runner, no VM), on the same database fixtures as the API tests."""

from __future__ import annotations

import contextlib
from pathlib import Path

from procs import admin_token, start_service, start_worker
from svchelpers import plan_doc, wait_until

from ktstr.results.model import Verdict
from ktstr.service.client import ServiceClient
from ktstr.service.states import JobState, PlanState


def _workers_online(client: ServiceClient, n: int) -> bool:
    return sum(w.state.value == "online" for w in client.workers()) >= n


def test_two_workers_share_a_plan(tmp_path: Path, db_url: str, sutclasses_file: Path) -> None:
    with contextlib.ExitStack() as stack:
        svc, url = start_service(tmp_path, db_url, sutclasses_file)
        stack.callback(svc.stop)
        token = admin_token(svc.output())
        for name in ("demo-01", "demo-02"):
            stack.callback(start_worker(tmp_path, url, token, name, 0.5).stop)
        with ServiceClient(url, token) as c:
            wait_until(lambda: _workers_online(c, 2), 30, "two workers")
            plan = c.submit_plan(plan_doc(schedulers=2, topologies=3))
            assert plan.total_jobs == 6
            done = wait_until(lambda: (p := c.plan(plan.id)).state is PlanState.COMPLETED
                              and p, 60, "the plan to complete")
            jobs = c.jobs(plan.id)
        assert done.completed_jobs == 6 and done.outcomes == {Verdict.PASS: 6}, \
            [(j.id, j.state, j.attempt, j.reasons) for j in jobs]
        assert {j.worker for j in jobs} == {"demo-01", "demo-02"}
        assert all(j.state is JobState.COMPLETED and j.attempt == 1 for j in jobs)


def test_killed_worker_job_is_requeued_and_finished_by_the_other(
        tmp_path: Path, db_url: str, sutclasses_file: Path) -> None:
    with contextlib.ExitStack() as stack:
        svc, url = start_service(tmp_path, db_url, sutclasses_file)
        stack.callback(svc.stop)
        token = admin_token(svc.output())
        w1 = start_worker(tmp_path, url, token, "demo-01", 3.0)
        stack.callback(w1.stop)
        with ServiceClient(url, token) as c:
            wait_until(lambda: _workers_online(c, 1), 30, "worker demo-01")
            plan = c.submit_plan(plan_doc())
            running = wait_until(lambda: [j for j in c.jobs(plan.id)
                                          if j.state is JobState.RUNNING], 30, "a running job")
            assert running[0].worker == "demo-01"
            w1.kill()
            stack.callback(start_worker(tmp_path, url, token, "demo-02", 0.2).stop)
            done = wait_until(lambda: (p := c.plan(plan.id)).state is PlanState.COMPLETED
                              and p, 60, "the plan to complete")
            (job,) = c.jobs(plan.id)
        assert done.outcomes == {Verdict.PASS: 1}
        assert job.worker == "demo-02" and job.attempt == 2
        assert job.state is JobState.COMPLETED


def test_service_restart_loses_nothing(tmp_path: Path, db_url: str,
                                       sutclasses_file: Path) -> None:
    """Kill the service mid-plan; a worker finishes a job meanwhile (its result waits in
    its spool), is itself killed and restarted; after the service restarts on the same
    port and database, every job completes exactly once.

    Workers here are not meant to be lost: a 1 s heartbeat timeout let a heavily loaded
    host (load 11-15) lose a job three times over (plan complete, 5 of 6 jobs completed),
    so this test gives them 10 s; lost workers have tests of their own."""
    with contextlib.ExitStack() as stack:
        svc, url = start_service(tmp_path, db_url, sutclasses_file, heartbeat_timeout="10s")
        stack.callback(lambda: svc.stop())  # noqa: PLW0108 (svc is replaced below)
        token = admin_token(svc.output())
        port = int(url.rsplit(":", 1)[1])
        spool = tmp_path / "state-demo-01" / "results"
        w1 = start_worker(tmp_path, url, token, "demo-01", 1.5)
        stack.callback(lambda: w1.stop())  # noqa: PLW0108 (w1 is replaced below)
        stack.callback(start_worker(tmp_path, url, token, "demo-02", 1.5).stop)
        with ServiceClient(url, token) as c:
            wait_until(lambda: _workers_online(c, 2), 30, "two workers")
            plan = c.submit_plan(plan_doc(schedulers=2, topologies=3))
            wait_until(lambda: any(j.state is JobState.RUNNING and j.worker == "demo-01"
                                   for j in c.jobs(plan.id)), 30, "demo-01 running a job")
        svc.kill()
        wait_until(lambda: list(spool.glob("job-*.json")), 30, "a spooled result")
        w1.kill()
        w1 = start_worker(tmp_path, url, token, "demo-01", 1.5)  # same state dir
        svc, url2 = start_service(tmp_path, db_url, sutclasses_file, port=port,
                                  log_name="service-2.log", heartbeat_timeout="10s")
        assert url2 == url
        assert "Created default admin user" not in svc.output()
        with ServiceClient(url, token) as c:
            done = wait_until(lambda: (p := c.plan(plan.id)).state is PlanState.COMPLETED
                              and p, 90, "the plan to complete")
            jobs = c.jobs(plan.id)
        assert done.completed_jobs == 6 and done.outcomes == {Verdict.PASS: 6}
        assert all(j.state is JobState.COMPLETED for j in jobs)
        # the worker removes a spooled result once the service has taken it, so just
        # after the plan completes the last one may still be there for a moment
        wait_until(lambda: not list(spool.glob("job-*.json")), 30, "the spool to empty")
