"""``ktstr-worker``: built with gcc -static, cached by source hash, and run on the host
(no cgroup) through its two-phase start for every work type."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ktstr.errors import UserError
from ktstr.guest import native
from ktstr.scenario import WorkType
from ktstr.scenario.reports import WorkerReport

BOUND_S = 20.0


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("KTSTR_CACHE_DIR")
    os.environ["KTSTR_CACHE_DIR"] = str(cache)
    try:
        path = native.worker_binary()
        assert path.parent.parent == cache / "native"
        assert native.worker_binary() == path  # cached: same file, no rebuild
        return path
    finally:
        if old is None:
            del os.environ["KTSTR_CACHE_DIR"]
        else:
            os.environ["KTSTR_CACHE_DIR"] = old


def _wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {BOUND_S} s")
        time.sleep(0.01)


def _run_ns(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError):
        return 0


def _run_worker(worker: Path, tmp: Path, work_type: str, *extra: str) -> WorkerReport:
    ready, report = tmp / f"{work_type}.ready", tmp / f"{work_type}.json"
    proc = subprocess.Popen([str(worker), "run", "--name", "cg", "--index", "0", "--type",
                             work_type, "--ready", str(ready), "--report", str(report),
                             *extra], stderr=subprocess.PIPE)
    try:
        _wait_for(ready.exists, "ready file")
        before = _run_ns(proc.pid)
        proc.send_signal(signal.SIGUSR1)
        # let it work until the kernel has charged it 30 ms of CPU (bounded)
        _wait_for(lambda: _run_ns(proc.pid) - before > 30_000_000, "30 ms of work")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=BOUND_S) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    return WorkerReport.model_validate(json.loads(report.read_text()))


@pytest.mark.parametrize("work_type", [w.value for w in WorkType])
def test_every_work_type_works_and_reports(worker: Path, tmp_path: Path,
                                           work_type: str) -> None:
    cpu = min(os.sched_getaffinity(0))  # a CPU this host lets us use
    r = _run_worker(worker, tmp_path, work_type, "--cpus", str(cpu))
    assert r.started and r.error == "" and r.work_type == work_type
    assert r.work_units > 0 and r.run_ns > 0 and r.wall_ns >= r.run_ns
    assert r.cpus == (cpu,)  # affinity applied after the start signal
    assert r.max_gap_ns > 0
    if WorkType(work_type).has_wakeups:
        assert r.wake_samples > 0 and r.wake_p50_ns is not None
        assert r.wake_p99_ns is not None and r.wake_p99_ns >= r.wake_p50_ns
    else:
        assert r.wake_p99_ns is None


def test_stopped_before_start_and_bad_input(worker: Path, tmp_path: Path) -> None:
    ready, report = tmp_path / "r", tmp_path / "rep.json"
    proc = subprocess.Popen([str(worker), "run", "--name", "cg", "--index", "1", "--type",
                             "cpu_spin", "--ready", str(ready), "--report", str(report)])
    _wait_for(ready.exists, "ready file")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=BOUND_S) == 0
    r = WorkerReport.model_validate(json.loads(report.read_text()))
    assert not r.started and r.work_units == 0
    done = subprocess.run([str(worker), "run", "--name", "cg", "--index", "2", "--type",
                           "warp", "--ready", str(ready), "--report", str(report)],
                          check=False, timeout=BOUND_S)
    assert done.returncode == 1
    assert "unknown work type warp" in json.loads(report.read_text())["error"]
    bad = subprocess.run([str(worker), "affinity", "x-y", "1"], check=False,
                         capture_output=True, timeout=BOUND_S)
    assert bad.returncode == 2 and b"usage" in bad.stderr


def test_missing_compiler_is_a_user_error_naming_the_fix() -> None:
    with pytest.raises(UserError, match=r"not on PATH: install gcc and libc6-dev"):
        native.worker_binary(compiler="ktstr-no-such-cc")


def test_source_hash_follows_source_and_compiler() -> None:
    a = native.source_hash(b"int main(){}", "gcc")
    assert a != native.source_hash(b"int main(){return 1;}", "gcc")
    assert a != native.source_hash(b"int main(){}", "clang")
