"""Real sched_ext schedulers in real kernels: attach proof and every failure verdict.

Issue 5's acceptance cases; each boots QEMU (TCG here) with a Debian kernel and the
kernel tree's own example schedulers built by ``ktstr schedulers build``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ktstr.declare.scheduler import EEVDF, Scheduler
from ktstr.declare.spec import SchedulerSpec
from ktstr.declare.topology import Topology
from ktstr.results.model import FailureClass, RunResult, SchedOutcome, Verdict
from ktstr.run.execute import run_scheduler
from ktstr.run.repro import failure_class
from ktstr.run.request import RunRequest, Workload
from ktstr.schedbin import discover_scheduler
from ktstr.schedulers.examples import SCX_CENTRAL, SCX_FLATCG, SCX_QMAP, SCX_SIMPLE

pytestmark = pytest.mark.vm

T1221 = Topology(1, 2, 2, 1)


def run(scheduler: Scheduler, *, kernel: str = "7.2", duration: float = 5,
        workload: Workload = Workload.SPIN, **kw: object) -> RunResult:
    # the first run is judged here; the traced rerun: test_repro_trace.py
    kw.setdefault("repro", False)
    req = RunRequest(scheduler=scheduler, kernel=kernel, topology=T1221,
                     duration_s=duration, workload=workload, **kw)  # type: ignore[arg-type]
    return run_scheduler(req)


def explain(r: RunResult) -> str:
    return (f"{r.summary_line()}\n--- sched log ---\n{r.sched_log[-3000:]}\n"
            f"--- console ---\n{r.console_tail}")


def test_cli_run_scx_simple_passes_with_attach_proof() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ktstr.cli.__main__", "run", "--kernel", "7.2", "--scheduler",
         "scx_simple", "--topology", "1,2,2,1", "--duration", "5"],
        check=False, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sched_attached  ops=simple" in done.stdout
    assert done.stdout.rstrip().endswith("PASS")
    assert "reproduce:  ktstr run --kernel 7.2.13 --scheduler scx_simple" in done.stdout
    # a pass is not rerun (repro is on by default in ktstr run)
    assert "repro:" not in done.stdout and "reproducing" not in done.stderr


@pytest.mark.parametrize("scheduler", [EEVDF, SCX_SIMPLE], ids=lambda s: s.name)
def test_eevdf_and_scx_simple_pass_under_stress_ng(scheduler: Scheduler) -> None:
    r = run(scheduler, workload=Workload.STRESS_NG)
    assert r.verdict is Verdict.PASS, explain(r)
    assert r.topology_diff == []
    assert "cpu" in r.stats.get("stress_ng", {}), r.stats
    assert r.stats["stress_ng"]["cpu"]["bogo_ops"] > 0
    if scheduler is SCX_SIMPLE:
        assert r.sched_outcome is SchedOutcome.ATTACHED and r.sched_ops == "simple"
        assert r.timings.attach_s is not None


# scx_flatcg (the kernel tree's example, 7.2 and 7.3) can strand a cgroup's queue: its
# ``fcg_enqueue`` inserts the task into the cgroup's DSQ, and the kernel performs that
# insert only after ``ops.enqueue`` returns, while ``cgrp_enqueued`` has already looked
# for the cgroup's tree node. A CPU that meanwhile found that DSQ empty in
# ``try_pick_next_cgroup`` stashes the node with ``queued`` left at 1, so nobody puts
# the cgroup back on the tree and its tasks wait until the watchdog ejects flatcg. Seen
# once in CI (7.2.13, 4 vCPUs under TCG, tasks of the root cgroup, dsq_id 0x1). The
# harness catching that is the harness working; the test still fails on anything else.
def _flatcg_race(scheduler: Scheduler, r: RunResult) -> bool:
    return (scheduler is SCX_FLATCG and r.verdict is Verdict.FAIL
            and failure_class(r) is FailureClass.STALLED)


@pytest.mark.parametrize("scheduler", [SCX_CENTRAL, SCX_FLATCG], ids=lambda s: s.name)
def test_scx_central_and_flatcg(scheduler: Scheduler) -> None:
    r = run(scheduler, duration=4)
    if _flatcg_race(scheduler, r):
        pytest.xfail("scx_flatcg's own enqueue/pick race stranded a cgroup queue and the "
                     f"kernel ejected it (see _flatcg_race): {r.reasons[0]}")
    assert r.verdict is Verdict.PASS, explain(r)
    assert r.sched_ops == scheduler.name.removeprefix("scx_")


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_scheduler_killed_mid_run_is_died_with_its_log(tmp_path: Path) -> None:
    wrapper = _script(tmp_path, "scx_dies", (
        'echo "wrapper: starting scx_simple"\n'
        "/usr/bin/scx_simple & pid=$!\n"
        "while [ \"$(cat /sys/kernel/sched_ext/state)\" != enabled ]; do sleep 0.1; done\n"
        "sleep 2\n"
        'echo "wrapper: killing $pid"\n'
        "kill -9 $pid\n"
        "exit 9\n"
    ))
    simple = discover_scheduler("scx_simple", "7.2")
    sched = Scheduler(name="scx_dies", binary=SchedulerSpec.path(str(wrapper)))
    r = run(sched, duration=8, include_files=(simple,))
    assert r.verdict is Verdict.FAIL, explain(r)
    assert r.sched_outcome is SchedOutcome.DIED
    assert "exited with code 9 while the workload ran" in r.reasons[0]
    assert "wrapper: killing" in r.sched_log


def test_qmap_stall_injection_is_ejected_with_the_kernel_reason() -> None:
    stall = SCX_QMAP.model_copy(update={"sched_args": ("-t", "10")})
    r = run(stall, duration=15)
    assert r.verdict is Verdict.FAIL, explain(r)
    assert r.sched_outcome is SchedOutcome.EJECTED
    assert r.ejection_reason == "runnable task stall"
    assert 'disabled (runnable task stall)' in r.kernel_sched_ext_log
    assert r.repro is None and not (Path(r.run_dir) / "repro").exists()  # --no-repro


def test_qmap_error_injection_is_ejected_with_the_debug_dump() -> None:
    err = SCX_QMAP.model_copy(update={"sched_args": ("-e", "100")})
    r = run(err, duration=8)
    assert r.verdict is Verdict.FAIL, explain(r)
    assert r.sched_outcome is SchedOutcome.EJECTED
    assert r.ejection_reason == "scx_bpf_error"
    assert "DEBUG DUMP" in r.debug_dump
    assert r.repro is None and not (Path(r.run_dir) / "repro").exists()  # --no-repro


def test_bin_false_is_died_and_a_non_bpf_program_is_not_attached() -> None:
    false = Scheduler(name="false", binary=SchedulerSpec.path("/bin/false"))
    r = run(false, duration=2)
    assert r.verdict is Verdict.FAIL and r.sched_outcome is SchedOutcome.DIED, explain(r)
    assert "exited with code 1 before attaching" in r.reasons[0]
    sleeper = Scheduler(name="sleeper", binary=SchedulerSpec.path("/bin/sleep"),
                        sched_args=("600",))
    r = run(sleeper, duration=2, attach_timeout_s=3)
    assert r.verdict is Verdict.FAIL and r.sched_outcome is SchedOutcome.NOT_ATTACHED, \
        explain(r)
    assert "state stayed 'disabled'" in r.reasons[0]


def test_kernel_without_sched_ext_skips_scx_but_runs_eevdf() -> None:
    skip = run(SCX_SIMPLE, kernel="6.12", duration=2)
    assert skip.verdict is Verdict.SKIP
    assert "no sched_ext" in skip.reasons[0]
    ok = run(EEVDF, kernel="6.12", duration=2)
    assert ok.verdict is Verdict.PASS, explain(ok)


def test_config_file_and_cgroup_parent_reach_the_guest_first(tmp_path: Path) -> None:
    cfg = tmp_path / "my_sched.toml"
    cfg.write_text("answer = 42\n")
    wrapper = _script(tmp_path, "scx_cfg", (
        'echo "ARGS: $*"\n'
        'echo "CONFIG: $(cat /include-files/my_sched.toml)"\n'
        '[ -d /sys/fs/cgroup/ktstr ] && echo "PARENT: exists"\n'
        "exec /usr/bin/scx_simple\n"
    ))
    simple = discover_scheduler("scx_simple", "7.2")
    sched = Scheduler(name="scx_cfg", binary=SchedulerSpec.path(str(wrapper)),
                      config_file=str(cfg), cgroup_parent="/ktstr", sched_args=("-v",))
    r = run(sched, duration=3, include_files=(simple,))
    assert r.verdict is Verdict.PASS, explain(r)
    assert "ARGS: --config /include-files/my_sched.toml --cell-parent-cgroup /ktstr -v" \
        in r.sched_log
    assert "CONFIG: answer = 42" in r.sched_log
    assert "PARENT: exists" in r.sched_log
    assert r.sched_args[:2] == ["--config", "/include-files/my_sched.toml"]
