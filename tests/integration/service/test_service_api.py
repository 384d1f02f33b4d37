"""The service API over real HTTP, against a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import time

import pytest
from svchelpers import FakeWorker, admin, plan_doc, user, wait_until

from ktstr.results.model import Verdict
from ktstr.service.client import RequestRejected
from ktstr.service.states import JobState, PlanState
from ktstr.testing import ServiceThread


def test_first_start_creates_admin_once(make_service: object) -> None:
    with make_service() as svc:  # type: ignore[operator]
        assert svc.admin_token
        with admin(svc) as a:
            me = a.whoami()
        assert me.name == "admin" and {c.value for c in me.capabilities} == {
            "exec", "query", "lease", "admin"}
    with make_service() as again:  # type: ignore[operator]
        assert again.admin_token is None


def test_plan_expands_into_jobs_and_lists(service: ServiceThread) -> None:
    with user(service, "alice", "exec,query") as alice:
        plan = alice.submit_plan(plan_doc(schedulers=2, topologies=3), priority=7)
        assert plan.total_jobs == 6 and plan.state is PlanState.QUEUED
        assert plan.priority == 7 and plan.owner == "alice"
        assert plan.eta_s == pytest.approx(6 * 60 / 4)  # timeouts over 4 SUTs
        jobs = alice.jobs(plan.id)
        assert [j.state for j in jobs] == [JobState.QUEUED] * 6
        assert {j.cell.scheduler for j in jobs} == {"scx_0", "scx_1"}
        assert [p.id for p in alice.plans()] == [plan.id]


def test_plan_list_filters(service: ServiceThread) -> None:
    with user(service, "alice", "exec,query") as alice, \
            user(service, "bob", "exec,query") as bob:
        a1 = alice.submit_plan(plan_doc())
        a2 = alice.submit_plan(plan_doc())
        alice.cancel_plan(a2.id)
        b1 = bob.submit_plan(plan_doc())
        assert [p.id for p in alice.plans()] == [a1.id]
        assert [p.id for p in alice.plans(all_states=True)] == [a1.id, a2.id]
        assert [p.id for p in alice.plans(all_users=True)] == [a1.id, b1.id]
        assert [p.id for p in alice.plans(users=["bob"])] == [b1.id]
        assert [p.id for p in alice.plans(states=["cancelled"])] == [a2.id]
        assert len(alice.plans(all_users=True, all_states=True)) == 3
        with pytest.raises(RequestRejected, match="unknown user"):
            alice.plans(users=["nobody"])


def test_bad_plans_name_the_field(service: ServiceThread) -> None:
    with admin(service) as a:
        with pytest.raises(RequestRejected, match=r"HTTP 422: .*sut.sutclass: unknown SUT "
                                                  r"class 'nope'; known: demo, other"):
            a.submit_plan(plan_doc(sutclass="nope"))
        doc = plan_doc()
        doc["runs"][0]["topologies"] = ["1,2,2"]
        with pytest.raises(RequestRejected, match=r"runs\[0\]\.topologies\[0\]"):
            a.submit_plan(doc)
        doc = plan_doc(timeout="soon")
        with pytest.raises(RequestRejected, match=r"plan\.defaults\.timeout: .*not a duration"):
            a.submit_plan(doc)
        doc = plan_doc()
        doc["runs"][0]["schedulers"] = []
        with pytest.raises(RequestRejected, match=r"plan\.runs\[0\]\.schedulers"):
            a.submit_plan(doc)


def test_dispatch_by_priority_then_submit_time(service: ServiceThread) -> None:
    with admin(service) as a:
        low = a.submit_plan(plan_doc(topologies=2), priority=1)
        high = a.submit_plan(plan_doc(topologies=2), priority=9)
        mid = a.submit_plan(plan_doc(topologies=1), priority=5)
        a.update_plan(low.id, 9)  # same priority as high now, but submitted earlier
        w = FakeWorker(a, "demo-01")
        order = []
        while (job := w.claim()) is not None:
            order.append(job.plan_id)
            w.run(job)
        assert order == [low.id, low.id, high.id, high.id, mid.id]
        assert a.plan(low.id).state is PlanState.COMPLETED


def test_priority_update_rules(service: ServiceThread) -> None:
    with admin(service) as a:
        plan = a.submit_plan(plan_doc())
        assert a.update_plan(plan.id, 4).priority == 4
        a.cancel_plan(plan.id)
        with pytest.raises(RequestRejected, match=r"HTTP 409: plan .* is cancelled; changing "
                                                  "its priority needs it to be queued or "
                                                  "running"):
            a.update_plan(plan.id, 5)
        with pytest.raises(RequestRejected, match="HTTP 404: no plan 999"):
            a.update_plan(999, 5)


def test_cancel_queued_vs_running(service: ServiceThread) -> None:
    with admin(service) as a:
        plan = a.submit_plan(plan_doc(topologies=3))
        w = FakeWorker(a, "demo-01")
        running = w.claim()
        assert running is not None
        w.start(running)
        after = a.cancel_plan(plan.id)
        assert after.state is PlanState.CANCELLED and after.completed_at is None
        states = {j.id: j.state for j in a.jobs(plan.id)}
        assert states[running.job_id] is JobState.RUNNING
        assert sorted(s for i, s in states.items() if i != running.job_id) == \
            [JobState.CANCELLED] * 2
        assert FakeWorker(a, "demo-02").claim() is None  # nothing left to dispatch
        assert w.heartbeat(running) is False  # the running job is allowed to finish
        assert w.finish(running, Verdict.PASS) == "completed"
        done = a.plan(plan.id)
        assert done.state is PlanState.CANCELLED and done.completed_at is not None
        assert done.completed_jobs == 1 and done.outcomes == {Verdict.PASS: 1}
        with pytest.raises(RequestRejected, match=r"HTTP 409: plan .* is cancelled; moving to "
                                                  "cancelled needs it to be one of: queued, "
                                                  "running"):
            a.cancel_plan(plan.id)


def test_worker_handshake(service: ServiceThread) -> None:
    with admin(service) as a:
        with pytest.raises(RequestRejected, match=r"HTTP 409: worker protocol 99"):
            a.call("POST", "/workers/register", json={
                "name": "demo-01", "sutclass": "demo", "version": "9", "protocol": 99})
        with pytest.raises(RequestRejected, match=r"has no SUT 'demo-99'; its SUTs: demo-01"):
            a.register("demo-99", "demo", "0.1.0")
        with pytest.raises(RequestRejected, match="unknown SUT class 'nope'"):
            a.register("demo-01", "nope", "0.1.0")
        w = FakeWorker(a, "demo-01")
        again = a.register("demo-01", "demo", "0.1.0")
        assert again.session == w.session.session + 1
        with pytest.raises(RequestRejected, match=r"session .* was replaced"):
            w.claim()


def test_claim_is_exclusive_and_one_job_per_worker(service: ServiceThread) -> None:
    with admin(service) as a:
        a.submit_plan(plan_doc(topologies=2))
        w1, w2 = FakeWorker(a, "demo-01"), FakeWorker(a, "demo-02")
        j1, j2 = w1.claim(), w2.claim()
        assert j1 and j2 and j1.job_id != j2.job_id
        with pytest.raises(RequestRejected, match=r"HTTP 409: job .* is not held by worker "
                                                  "'demo-02'"):
            w2.finish(j1)
        w2.run(j2)
        with pytest.raises(RequestRejected, match=r"HTTP 409: job .* is completed; moving to "
                                                  "completed needs"):
            w2.finish(j2)


def test_long_poll_wakes_a_free_worker_fast(service: ServiceThread) -> None:
    import threading

    with admin(service) as a:
        w = FakeWorker(a, "demo-01")
        got: list[tuple[float, object]] = []

        def claim() -> None:
            job = w.claim(wait=10)
            got.append((time.monotonic(), job))

        t = threading.Thread(target=claim)
        t.start()
        wait_until(lambda: service.ctx.wakeup._waiters.get(1), 5, "the claim to wait")
        woken = service.ctx.wakeup.woken
        a.submit_plan(plan_doc())
        t.join(10)
        (_, job), = got
        assert job is not None
        # released by the submit's wake-up, not by the fallback re-read or its timeout
        assert service.ctx.wakeup.woken > woken


def test_job_timeout_ends_the_job(make_service: object) -> None:
    with make_service(timeout_slack_s=0) as svc, admin(svc) as a:  # type: ignore[operator]
        plan = a.submit_plan(plan_doc(timeout="1s"))
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None and job.timeout_s == 1
        w.start(job)
        wait_until(lambda: a.jobs(plan.id)[0].state is JobState.TIMED_OUT, 10, "timeout")
        j = a.jobs(plan.id)[0]
        assert j.outcome is None and "timeout (1s) plus 0s slack" in j.reasons[0]
        assert w.heartbeat(job) is True  # the worker is told to stop
        assert a.plan(plan.id).state is PlanState.COMPLETED


def test_worker_reported_timeout(service: ServiceThread) -> None:
    with admin(service) as a:
        plan = a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None
        w.start(job)
        assert w.finish(job, outcome=None, failed=True, timed_out=True) == "timed_out"
        assert a.plan(plan.id).job_states == {JobState.TIMED_OUT: 1}


def test_lost_worker_job_requeued_then_failed(make_service: object) -> None:
    with make_service(heartbeat_timeout_s=0.5, max_tries=2) as svc, \
            admin(svc) as a:  # type: ignore[operator]
        plan = a.submit_plan(plan_doc())
        w1 = FakeWorker(a, "demo-01")
        first = w1.claim()
        assert first is not None
        w1.start(first)
        job_state = lambda: a.jobs(plan.id)[0]  # noqa: E731
        wait_until(lambda: job_state().state is JobState.QUEUED, 10, "requeue")
        assert "worker demo-01 lost" in job_state().reasons[0]
        assert [w.state.value for w in a.workers()] == ["lost"]
        w2 = FakeWorker(a, "demo-02")
        second = w2.claim()
        assert second is not None and second.attempt == 2
        wait_until(lambda: job_state().state is JobState.FAILED, 10, "failure")
        assert "gave up after 2 lost attempts" in job_state().reasons[0]
        assert job_state().outcome is Verdict.ERROR
        assert a.plan(plan.id).state is PlanState.COMPLETED


def test_a_worker_taken_for_lost_that_claims_is_watched_again(make_service: object) -> None:
    # a claim that arrives after the reaper took its worker for lost (slow client, or a
    # loaded host): the job it gets must still be requeued when the worker goes silent,
    # not wait for its deadline
    with make_service(heartbeat_timeout_s=0.5) as svc, admin(svc) as a:  # type: ignore[operator]
        plan = a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        wait_until(lambda: [x.state.value for x in a.workers()] == ["lost"], 10, "lost")
        job = w.claim()
        assert job is not None
        assert [x.state.value for x in a.workers()] == ["online"]
        wait_until(lambda: a.jobs(plan.id)[0].state is JobState.QUEUED, 10, "requeue")


def test_late_result_of_requeued_job_is_kept(make_service: object) -> None:
    with make_service(heartbeat_timeout_s=0.5) as svc, admin(svc) as a:  # type: ignore[operator]
        plan = a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None
        w.start(job)
        wait_until(lambda: a.jobs(plan.id)[0].state is JobState.QUEUED, 10, "requeue")
        assert w.finish(job) == "completed"  # nobody claimed it meanwhile
        assert a.plan(plan.id).state is PlanState.COMPLETED


def test_eta_uses_recorded_durations(service: ServiceThread) -> None:
    with admin(service) as a:
        first = a.submit_plan(plan_doc(repeats=2, timeout="10m"))
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None
        w.run(job, duration=30.0)
        assert a.plan(first.id).eta_s == pytest.approx(30 / 4)  # 1 left, known: 30s
        second = a.submit_plan(plan_doc(schedulers=2, timeout="10m"))
        # scx_0 known (30s), scx_1 unknown (its 600s timeout), over 4 SUTs
        assert a.plan(second.id).eta_s == pytest.approx((30 + 600) / 4)


def test_sutclass_usage(service: ServiceThread) -> None:
    from datetime import UTC, datetime, timedelta

    with admin(service) as a:
        a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None
        demo = {c.name: c for c in a.sutclasses()}["demo"]
        assert (demo.suts_in_use, demo.suts_total, demo.usage) == (1, 4, None)
        now = datetime.now(UTC)
        window = {c.name: c for c in a.sutclasses(now - timedelta(seconds=60),
                                                   now + timedelta(seconds=60))}
        assert 0 < (window["demo"].usage or 0) < 0.1
        assert window["other"].usage == 0


def test_log_upload_and_fetch(service: ServiceThread) -> None:
    with admin(service) as a:
        a.submit_plan(plan_doc())
        w = FakeWorker(a, "demo-01")
        job = w.claim()
        assert job is not None
        with pytest.raises(RequestRejected, match="has no log yet"):
            a.job_log(job.job_id)
        w.run(job)
        assert a.job_log(job.job_id) == f"log of {job.job_id}\n"
