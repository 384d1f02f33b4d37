"""Several service processes on one PostgreSQL database (``ktstr sched run --workers N``):
wake-ups cross processes over LISTEN/NOTIFY, no job is claimed twice, and the
process group starts and stops as one."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import pytest
from procs import KTSTR, Proc
from svchelpers import FakeWorker, admin, plan_doc, wait_until

from ktstr.contract import Assignment
from ktstr.service.client import RequestRejected, ServiceClient
from ktstr.service.settings import Settings
from ktstr.testing import ServiceThread


def _settings(url: str, tmp: Path, sutclasses: Path) -> Settings:
    return Settings(database_url=url, storage=tmp / "storage", sutclasses=sutclasses,
                    reaper_interval_s=0.1)


@pytest.mark.db
def test_a_claim_waiting_in_one_process_is_woken_by_a_submit_to_another(
        pg_url: str, tmp_path: Path, sutclasses_file: Path) -> None:
    settings = _settings(pg_url, tmp_path, sutclasses_file)
    with (ServiceThread(settings, relay_wakeups=True) as first,
          ServiceThread(settings, primary=False, relay_wakeups=True) as second):
        assert first.admin_token and second.admin_token is None
        with admin(first) as a, ServiceClient(second.url, first.admin_token) as b:
            w = FakeWorker(b, "demo-01")
            got: list[Assignment | None] = []
            t = threading.Thread(target=lambda: got.append(w.claim(wait=20)))
            t.start()
            wait_until(lambda: second.ctx.wakeup._waiters.get(1), 10, "the claim to wait")
            woken = second.ctx.wakeup.woken
            a.submit_plan(plan_doc())  # to the first process
            t.join(20)
        assert got and got[0] is not None
        # released by the relayed wake-up, not by the fallback re-read or the timeout
        assert second.ctx.wakeup.woken > woken
        assert second.ctx.relay is not None and second.ctx.relay.received >= 1


@pytest.mark.db
def test_a_lease_waiting_in_one_process_is_granted_on_a_release_in_another(
        pg_url: str, tmp_path: Path, sutclasses_file: Path) -> None:
    settings = _settings(pg_url, tmp_path, sutclasses_file)
    with (ServiceThread(settings, relay_wakeups=True) as first,
          ServiceThread(settings, primary=False, relay_wakeups=True) as second):
        assert first.admin_token
        with admin(first) as a, ServiceClient(second.url, first.admin_token) as b:
            held = [a.acquire_lease("other")]  # the class's one SUT
            assert held[0].state.value == "acquired"
            queued = b.acquire_lease("other")
            assert queued.state.value == "queued"
            got: list[object] = []
            t = threading.Thread(target=lambda: got.append(b.lease(queued.id, 20)))
            t.start()
            wait_until(lambda: second.ctx.lease_events._waiters.get(queued.id), 10,
                       "the lease wait")
            woken = second.ctx.lease_events.woken
            a.release_lease(held[0].id)  # through the first process
            t.join(20)
        assert got, "the lease wait did not return"
        assert second.ctx.lease_events.woken > woken


def _start(tmp: Path, url: str, sutclasses: Path, processes: int) -> tuple[Proc, str, str]:
    proc = Proc([*KTSTR, "sched", "run", "--host", "127.0.0.1", "--port", "0",
                 "--database", url, "--storage", str(tmp / "storage"), "--sutclasses",
                 str(sutclasses), "--workers", str(processes)], tmp / "service.log")

    def listening() -> tuple[str, str] | None:
        if not proc.alive():
            raise AssertionError(f"the service exited:\n{proc.output()}")
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.output())
        token = re.search(r"with token: (\S+)", proc.output())
        return (m.group(1), token.group(1)) if m and token else None

    url_, token = wait_until(listening, 30, "the service to listen")
    return proc, url_, token


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [int(p) for p in out.split()]


@pytest.mark.db
def test_several_processes_claim_every_job_once_and_stop_together(
        pg_url: str, tmp_path: Path, sutclasses_file: Path) -> None:
    proc, url, token = _start(tmp_path, pg_url, sutclasses_file, 2)
    try:
        assert "2 processes" in proc.output()
        children = wait_until(lambda: len(_children(proc.pid)) == 2 and
                              _children(proc.pid), 30, "two service processes")
        with ServiceClient(url, token) as a:
            a.submit_plan(plan_doc(schedulers=10, topologies=4))  # 40 jobs
        claimed: list[int] = []
        lock = threading.Lock()

        def drain(name: str) -> None:
            # a client (connection) of its own per worker: the kernel spreads them
            # over both processes
            with ServiceClient(url, token) as c:
                w = FakeWorker(c, name)
                while (job := w.claim()) is not None:
                    w.run(job)
                    with lock:
                        claimed.append(job.job_id)

        threads = [threading.Thread(target=drain, args=(f"demo-{i:02d}",))
                   for i in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.output()
    assert all(not Path(f"/proc/{c}").exists() for c in children)


def test_several_processes_are_refused_on_sqlite(tmp_path: Path,
                                                 sutclasses_file: Path) -> None:
    out = subprocess.run([*KTSTR, "sched", "run", "--port", "0", "--database",
                          f"sqlite:///{tmp_path / 'db.sqlite'}", "--sutclasses",
                          str(sutclasses_file), "--workers", "2"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2, out
    assert "a SQLite service is one process" in out.stderr
    assert not (tmp_path / "db.sqlite").exists()


@pytest.mark.db
@pytest.mark.parametrize("change", ["disable", "rotate"])
def test_a_disable_or_rotate_in_one_process_refuses_the_token_in_another(
        pg_url: str, tmp_path: Path, sutclasses_file: Path, change: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a cached token would outlive any bounded wait below: only the relayed change can
    # make the second process refuse it
    monkeypatch.setattr("ktstr.service.context.AUTH_CACHE_S", 3600.0)
    settings = _settings(pg_url, tmp_path, sutclasses_file)
    with (ServiceThread(settings, relay_wakeups=True) as first,
          ServiceThread(settings, primary=False, relay_wakeups=True) as second):
        assert first.admin_token
        with admin(first) as a:
            token = a.create_user("carol", ["lease", "query"]).token
            with ServiceClient(second.url, token) as carol:
                assert carol.whoami().name == "carol"  # now cached in the second process
                if change == "disable":
                    a.disable_user("carol")
                else:
                    a.rotate_token("carol")

                def refused() -> int | None:
                    try:
                        carol.whoami()
                    except RequestRejected as exc:
                        return exc.status
                    return None

                assert wait_until(refused, 10, "the second process to refuse the token") \
                    == 401
