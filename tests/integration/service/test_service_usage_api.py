"""The usage report and sutclass-list usage over real HTTP, from jobs and leases; the
lease CLI verbs end to end."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime, timedelta

from procs import KTSTR
from svchelpers import FakeWorker, admin, plan_doc

from ktstr.results.model import Verdict
from ktstr.testing import ServiceThread


def test_usage_by_sut_user_and_class(service: ServiceThread) -> None:
    with admin(service) as a:
        start = datetime.now(UTC) - timedelta(seconds=1)
        w = FakeWorker(a, "demo-01")
        a.submit_plan(plan_doc(topologies=2))
        first = w.claim()
        assert first is not None
        w.run(first)
        job = w.claim()
        assert job is not None
        w.run(job, outcome=Verdict.FAIL)
        lease = a.acquire_lease("other")
        end = datetime.now(UTC) + timedelta(seconds=1)
        rows = {r.key: r for r in a.usage("sut", start, end)}
        assert (rows["demo-01"].jobs, rows["demo-01"].failed_jobs) == (2, 1)
        assert rows["demo-01"].failure_rate == 0.5 and rows["demo-01"].busy > 0
        assert rows["other-01"].leases == 1 and rows["other-01"].busy > 0
        assert rows["demo-02"].busy == 0 and rows["demo-02"].jobs == 0
        classes = {r.key: r for r in a.usage("sutclass", start, end)}
        assert classes["demo"].suts == 4 and classes["demo"].jobs == 2
        assert [r.key for r in a.usage("user", start, end)] == ["admin"]
        listed = {c.name: c for c in a.sutclasses(start, end)}
        assert listed["other"].usage and listed["other"].usage > 0  # the lease counts
        a.release_lease(lease.id)


def test_lease_cli_wait_list_release(service: ServiceThread) -> None:
    assert service.admin_token
    env_args = ["--url", service.url, "--token", service.admin_token]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*KTSTR, "sched", *args, *env_args], capture_output=True,
                              text=True, timeout=60, check=False)

    held = cli("lease-acquire", "other", "--json")
    assert held.returncode == 0, held.stderr
    first = json.loads(held.stdout)
    assert first["state"] == "acquired" and first["sut"] == "other-01"
    out: list[subprocess.CompletedProcess[str]] = []
    waiter = threading.Thread(target=lambda: out.append(cli("lease-acquire", "other",
                                                             "--wait")))
    waiter.start()
    with admin(service) as a:
        from svchelpers import wait_until

        wait_until(lambda: len(a.leases()) == 2, 30, "the second lease to queue")
    listed = cli("lease-list")
    assert listed.returncode == 0 and "queued" in listed.stdout and "acquired" in listed.stdout
    released = cli("lease-release", str(first["id"]))
    assert released.returncode == 0 and "released" in released.stdout
    waiter.join(60)
    assert out and out[0].returncode == 0, out
    assert "waiting for a SUT" in out[0].stderr
    assert "acquired" in out[0].stdout and "SUT: other-01" in out[0].stdout
    assert "connection: SSH host=other-01" in out[0].stdout
    one = cli("lease-list", str(first["id"]), "--json")
    assert json.loads(one.stdout)[0]["state"] == "released"
