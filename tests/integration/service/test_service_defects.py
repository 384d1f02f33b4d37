"""The defects of issue 18, each over real HTTP against a real database: a test per
defect that failed before its fix."""

from __future__ import annotations

import signal
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from procs import KTSTR, Proc, start_worker
from svchelpers import FakeWorker, admin, plan_doc, user, wait_until

from ktstr.service.client import RequestRejected
from ktstr.service.settings import Settings
from ktstr.service.states import JobState, LeaseState, WorkerState
from ktstr.testing import ServiceThread


# --- 1. an interrupted lease-acquire --wait leaves no queued lease behind -----------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_lease_wait_cancels_its_lease(service: ServiceThread, tmp_path: Path,
                                                  sig: signal.Signals) -> None:
    with admin(service) as a, user(service, "bob", "lease,query") as bob:
        held = a.acquire_lease("other")
        assert held.state is LeaseState.ACQUIRED
        token = bob._http.headers["Authorization"].removeprefix("Bearer ")
        with Proc([*KTSTR, "sched", "lease-acquire", "other", "--wait", "--url",
                   service.url, "--token", token], tmp_path / "wait.log") as waiter:
            (queued,) = wait_until(bob.leases, 30, "bob's lease to queue")
            assert queued.state is LeaseState.QUEUED
            wait_until(lambda: "waiting for a SUT" in waiter.output(), 30,
                       "the client to wait")
            waiter.proc.send_signal(sig)
            waiter.proc.wait(30)
            assert waiter.proc.returncode != 0
        assert f"lease {queued.id} cancelled" in waiter.output()
        gone = a.lease(queued.id)
        assert gone.state is LeaseState.CANCELLED, gone
        a.release_lease(held.id)
        # the SUT is free again, and no forgotten lease takes it
        assert a.acquire_lease("other").state is LeaseState.ACQUIRED


def test_queued_lease_whose_client_stopped_polling_is_cancelled(
        make_service: object) -> None:
    with make_service(lease_poll_grace_s=0.5) as svc, admin(svc) as a:  # type: ignore[operator]
        held = a.acquire_lease("other")
        polled = a.acquire_lease("other")
        unwatched = a.acquire_lease("other")  # never waited on: kept until released
        assert a.lease(polled.id, wait_s=0.2).state is LeaseState.QUEUED
        gone = wait_until(lambda: (x := a.lease(polled.id)).state is not LeaseState.QUEUED
                          and x, 30, "the abandoned lease to be cancelled")
        assert gone.state is LeaseState.CANCELLED
        assert gone.reason and "stopped waiting" in gone.reason
        assert a.lease(unwatched.id).state is LeaseState.QUEUED
        a.release_lease(held.id)
        assert a.lease(unwatched.id).state is LeaseState.ACQUIRED


# --- 2. own leases need only the lease capability -------------------------------------
def test_lease_only_user_waits_on_and_lists_own_leases(service: ServiceThread) -> None:
    with admin(service) as a, user(service, "bob", "lease") as bob:
        held = a.acquire_lease("other")
        mine = bob.acquire_lease("other")
        assert bob.lease(mine.id, wait_s=0.1).state is LeaseState.QUEUED
        assert [x.id for x in bob.leases()] == [mine.id]
        with pytest.raises(RequestRejected, match=r"HTTP 403.*'query'"):
            bob.lease(held.id)
        with pytest.raises(RequestRejected, match=r"HTTP 403.*'query'"):
            bob.leases(all_users=True)
        a.release_lease(held.id)
        assert bob.lease(mine.id, wait_s=10).state is LeaseState.ACQUIRED


# --- 3. upload:NAME must have been uploaded, on both submit endpoints --------------
def test_plan_naming_an_upload_it_did_not_send_is_refused(service: ServiceThread) -> None:
    doc = plan_doc()
    doc["runs"][0]["kernels"] = ["upload:bzImage"]
    with admin(service) as a:
        with pytest.raises(RequestRejected) as err:
            a.submit_plan(doc)
        assert err.value.status == 422
        assert "runs[0].kernels[0]: refers to upload:bzImage, which was not uploaded " \
               "with the plan" in err.value.detail
        assert a.plans(all_states=True, all_users=True) == []


# --- 4. bind first, then create the admin ---------------------------------------------
def test_run_on_a_busy_port_creates_no_admin(tmp_path: Path, sutclasses_file: Path,
                                             db_url: str) -> None:
    argv = [*KTSTR, "sched", "run", "--host", "127.0.0.1", "--database", db_url,
            "--storage", str(tmp_path / "storage"), "--sutclasses", str(sutclasses_file)]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        first = Proc([*argv, "--port", str(port)], tmp_path / "first.log")
        first.proc.wait(60)
        first.stop()
    assert first.proc.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in first.output()
    assert "Created default admin" not in first.output()
    with Proc([*argv, "--port", "0"], tmp_path / "second.log") as second:
        wait_until(lambda: "listening on" in second.output() or not second.alive(), 60,
                   "the second start")
        assert "Created default admin user 'admin' with token: " in second.output()


# --- 5. a reversed usage window is refused ------------------------------------------
def test_sutclass_list_reversed_window_is_400(service: ServiceThread) -> None:
    later = datetime.now().astimezone()
    earlier = later - timedelta(days=1)
    with admin(service) as a, pytest.raises(RequestRejected) as err:
        a.sutclasses(later, earlier)
    assert err.value.status == 400
    assert "empty usage window" in err.value.detail


# --- 6. progress counts completed jobs only -------------------------------------------
def test_progress_does_not_count_cancelled_jobs(service: ServiceThread) -> None:
    from ktstr.service.render import plan_rows

    with admin(service) as a:
        w = FakeWorker(a, "demo-01")
        plan = a.submit_plan(plan_doc(schedulers=2, topologies=3))
        job = w.claim()
        assert job is not None
        w.run(job)
        cancelled = a.cancel_plan(plan.id)
    assert cancelled.total_jobs == 6
    assert cancelled.completed_jobs == 1
    assert cancelled.job_states[JobState.CANCELLED] == 5
    assert "1/6" in plan_rows([cancelled])[0]


# --- 8. a body that is not JSON: where it breaks ------------------------------------
def test_non_json_body_names_line_and_column(service: ServiceThread) -> None:
    assert service.admin_token
    resp = httpx.post(f"{service.url}/api/v1/plans", content=b'{"plan":\n  {"sut": }}',
                      headers={"Authorization": f"Bearer {service.admin_token}",
                               "Content-Type": "application/json"})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "not valid JSON" in detail and "line 2, column 11" in detail, detail


# --- 9. a SUT no worker serves is not held back for jobs ----------------------------
def test_lease_is_not_held_back_by_jobs_nobody_can_run(service: ServiceThread) -> None:
    with admin(service) as a:
        a.submit_plan(plan_doc(sutclass="other"))  # no worker serves other-01
        lease = a.acquire_lease("other")
        assert lease.state is LeaseState.ACQUIRED and lease.sut == "other-01"
        released = a.release_lease(lease.id)
        assert released.state is LeaseState.RELEASED
        # a worker that serves the SUT makes the queued job take it first again
        w = FakeWorker(a, "other-01", "other")
        second = a.acquire_lease("other")
        assert second.state is LeaseState.QUEUED
        job = w.claim()
        assert job is not None


# --- 10. workers stopped cleanly are offline; restarts do not refresh heartbeats -----
def test_cleanly_stopped_worker_is_offline_not_lost(make_service: object,
                                                    tmp_path: Path) -> None:
    with make_service(heartbeat_timeout_s=1.0) as svc, admin(svc) as a:  # type: ignore[operator]
        assert svc.admin_token
        clean = start_worker(tmp_path, svc.url, svc.admin_token, "demo-01", 0.1)
        killed = start_worker(tmp_path, svc.url, svc.admin_token, "demo-02", 0.1)
        wait_until(lambda: {w.name for w in a.workers()} == {"demo-01", "demo-02"}, 60,
                   "both workers to register")
        clean.stop()
        killed.kill()
        states = wait_until(
            lambda: (s := {w.name: w.state for w in a.workers()})[
                "demo-02"] is WorkerState.LOST and s, 30, "the killed worker to be lost")
        assert states["demo-01"] is WorkerState.OFFLINE, (states, clean.output())


def test_restart_does_not_refresh_a_silent_workers_heartbeat(db_url: str, tmp_path: Path,
                                                             sutclasses_file: Path) -> None:
    settings = Settings(database_url=db_url, storage=tmp_path / "storage",
                        sutclasses=sutclasses_file, heartbeat_timeout_s=600,
                        reaper_interval_s=0.1)
    with ServiceThread(settings) as svc, admin(svc) as a:
        w = FakeWorker(a, "demo-01")
        a.submit_plan(plan_doc())
        assert w.claim() is not None
        beat = a.workers()[0].last_heartbeat
        token = svc.admin_token
    restarted_at = time.time()
    with ServiceThread(settings) as again:
        assert token
        with httpx.Client(base_url=again.url) as c:
            resp = c.get("/api/v1/workers", headers={"Authorization": f"Bearer {token}"})
        (row,) = resp.json()
    seen = datetime.fromisoformat(row["last_heartbeat"]).timestamp()
    # only the outage is forgiven: the heartbeat moves by at most the time the service
    # was down, not to the restart time
    assert seen < restarted_at, (seen, restarted_at, beat)
    assert seen >= beat.timestamp()
