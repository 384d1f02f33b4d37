"""Leases over real HTTP, on SQLite and PostgreSQL: acquire/wait/release, priority
against jobs, expiry returning the SUT, a killed holder's lease expiring."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from procs import KTSTR, Proc
from svchelpers import FakeWorker, admin, plan_doc, user, wait_until

from ktstr.service.client import RequestRejected
from ktstr.service.leases import LeaseOut
from ktstr.service.states import LeaseState
from ktstr.testing import ServiceThread


def test_acquire_list_release(service: ServiceThread) -> None:
    with user(service, "alice", "lease,query") as alice, \
            user(service, "bob", "lease,query") as bob:
        lease = alice.acquire_lease("other")
        assert lease.state is LeaseState.ACQUIRED and lease.sut == "other-01"
        assert lease.connection == {"method": "SSH", "params": {"host": "other-01"}}
        queued = bob.acquire_lease("other")
        assert queued.state is LeaseState.QUEUED and queued.sut is None
        assert [x.id for x in alice.leases()] == [lease.id]
        assert [x.id for x in alice.leases(all_users=True)] == [lease.id, queued.id]
        assert [x.id for x in alice.leases(users=["bob"])] == [queued.id]
        with pytest.raises(RequestRejected, match=r"HTTP 403.*belongs to another user"):
            bob.release_lease(lease.id)
        # bob waits (long-poll) while alice releases: the SUT moves to bob's lease
        got: list[LeaseOut] = []
        waiter = threading.Thread(target=lambda: got.append(bob.lease(queued.id, wait_s=20)))
        waiter.start()
        assert alice.release_lease(lease.id).state is LeaseState.RELEASED
        waiter.join(25)
        assert got and got[0].state is LeaseState.ACQUIRED and got[0].sut == "other-01"
        assert alice.leases() == []
        assert [x.state for x in alice.leases(all_states=True)] == [LeaseState.RELEASED]
        with pytest.raises(RequestRejected, match=r"HTTP 409: lease .* is released"):
            alice.release_lease(lease.id)
    with user(service, "carol", "query") as carol, \
            pytest.raises(RequestRejected, match=r"HTTP 403.*'lease' capability"):
        carol.acquire_lease("other")


def test_leased_sut_gets_no_jobs_and_priority_decides(service: ServiceThread) -> None:
    with admin(service) as a:
        w = FakeWorker(a, "other-01", "other")
        plan = a.submit_plan(plan_doc(sutclass="other", topologies=2), priority=5)
        first = w.claim()
        assert first is not None
        low = a.acquire_lease("other", priority=1)  # the job ahead of it goes first
        assert low.state is LeaseState.QUEUED
        w.run(first)
        second = w.claim()
        assert second is not None and second.plan_id == plan.id
        w.run(second)
        assert w.claim() is None  # no jobs left: the lease takes the SUT
        assert a.lease(low.id).state is LeaseState.ACQUIRED
        later = a.submit_plan(plan_doc(sutclass="other"), priority=9)
        assert w.claim() is None  # leased: no jobs even at priority 9
        a.release_lease(low.id)
        job = w.claim(wait=5)
        assert job is not None and job.plan_id == later.id
        high = a.acquire_lease("other", priority=9)
        assert high.state is LeaseState.QUEUED  # the SUT is busy with that job
        a.submit_plan(plan_doc(sutclass="other"), priority=5)
        w.run(job)
        assert w.claim() is None  # the priority-9 lease beats the priority-5 job
        assert a.lease(high.id).state is LeaseState.ACQUIRED


def test_expiry_returns_the_sut(make_service: object) -> None:
    # long enough that the first claim is made while the lease surely holds, on a loaded
    # machine too (CI saw a 1 s lease expire before it); the expiry is then waited for
    with make_service(lease_max_s=5.0) as svc, admin(svc) as a:  # type: ignore[operator]
        lease = a.acquire_lease("other")
        assert lease.state is LeaseState.ACQUIRED
        renewed = a.renew_lease(lease.id)
        assert renewed.expires_at and lease.expires_at
        assert renewed.expires_at >= lease.expires_at
        w = FakeWorker(a, "other-01", "other")
        a.submit_plan(plan_doc(sutclass="other"))
        assert w.claim() is None
        job = w.claim(wait=20)  # woken when the lease expires
        assert job is not None
        gone = a.lease(lease.id)
        assert gone.state is LeaseState.EXPIRED and gone.reason
        with pytest.raises(RequestRejected, match="renewing it needs it to be acquired"):
            a.renew_lease(lease.id)


def test_killed_holder_lease_expires(make_service: object, tmp_path: Path) -> None:
    # the maximum leaves room for the holder process to start on a loaded machine; the
    # lease must outlive it several times over only because the holder renews it
    lease_max = 6.0
    with make_service(lease_max_s=lease_max) as svc, admin(svc) as a:  # type: ignore[operator]
        lease = a.acquire_lease("other")
        acquired_at = time.monotonic()
        assert svc.admin_token
        holder = Proc([*KTSTR, "sched", "lease-renew", str(lease.id), "--every", "0.5",
                       "--url", svc.url, "--token", svc.admin_token], tmp_path / "holder.log")
        try:
            wait_until(lambda: time.monotonic() - acquired_at > 1.5 * lease_max
                       and holder.output().count("renewed") >= 3, 60,
                       "the holder to renew past the lease maximum")
            assert a.lease(lease.id).state is LeaseState.ACQUIRED
        finally:
            holder.kill()
        expired = wait_until(lambda: a.lease(lease.id).state is LeaseState.EXPIRED,
                             3 * lease_max, "the lease to expire")
        assert expired
        again = a.acquire_lease("other")
        assert again.state is LeaseState.ACQUIRED and again.sut == "other-01"
