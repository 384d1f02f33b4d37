"""Issue 20: a failed cell is rerun once with a scheduling trace, on real kernels with
the kernel tree's real scx_qmap (stall and error injection), and a declared one-shot
fault that does not recur is marked flaky.

Each test boots two VMs (the failing run and its traced rerun). The trace is checked
from its raw text with the parser (``tests/unit/test_trace_repro.py`` pins the parser
on a recorded trace), and the Chrome JSON is loaded as a viewer would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ktstr.declare.topology import Topology
from ktstr.results.model import FailureClass, ReproStatus, RunResult, Verdict
from ktstr.results.trace import (
    CPU_PROCESS,
    ParsedTrace,
    failure_instant,
    last_seen_on,
    parse_trace,
    runnable_since,
    stalled_task,
    tasks_named,
)
from ktstr.run.execute import run_scheduler
from ktstr.run.request import RunRequest
from ktstr.schedulers.examples import SCX_QMAP

pytestmark = pytest.mark.vm

T1221 = Topology(1, 2, 2, 1)
#: scx_qmap's watchdog bound (scx_qmap.bpf.c: .timeout_ms = 5000U)
QMAP_WATCHDOG_S = 5.0
KERNELS = ["7.2", "7.3"]


def run(kernel: str, args: tuple[str, ...], duration: float, **kw: object) -> RunResult:
    sched = SCX_QMAP.model_copy(update={"sched_args": args})
    return run_scheduler(RunRequest(scheduler=sched, kernel=kernel, topology=T1221,
                                    duration_s=duration, **kw))  # type: ignore[arg-type]


def explain(r: RunResult) -> str:
    rp = r.repro.model_dump_json(indent=1, exclude={"trace": {"window"}}) if r.repro else "-"
    return f"{r.summary_line()}\nnotes: {r.notes}\nrepro: {rp}"


def traced(r: RunResult) -> tuple[ParsedTrace, dict[str, object]]:
    """The rerun's raw trace, parsed, and its Chrome JSON, loaded."""
    assert r.repro is not None and r.repro.trace is not None, explain(r)
    tr = r.repro.trace
    assert Path(tr.text_path).parent == Path(r.run_dir) / "repro"
    trace = parse_trace(Path(tr.text_path).read_text(errors="surrogateescape"))
    assert trace.unparsed == 0 and trace.events, tr.text_path
    doc = json.loads(Path(tr.json_path).read_text())
    assert {"sched/sched_switch", "sched/sched_wakeup"} <= set(tr.enabled), tr.enabled
    assert "sched_ext/sched_ext_dump" in tr.enabled, tr.enabled
    return trace, doc


@pytest.mark.parametrize("kernel", KERNELS)
def test_stall_reproduces_and_the_trace_shows_the_task_waiting(kernel: str) -> None:
    r = run(kernel, ("-t", "10"), 15)
    assert r.verdict is Verdict.FAIL and r.ejection_reason == "runnable task stall", explain(r)
    assert r.repro is not None and r.repro.status is ReproStatus.REPRODUCED, explain(r)
    assert r.repro.first_class is r.repro.repro_class is FailureClass.STALLED
    trace, doc = traced(r)
    fail = failure_instant(trace)
    assert fail is not None, explain(r)
    # the rerun's stalled task, as the kernel named it (its pid is the rerun's own)
    stalled = stalled_task(*r.repro.reasons)
    assert stalled is not None, r.repro.reasons
    since = runnable_since(trace, stalled.pid, fail.t)
    assert since is not None, f"{stalled} never runnable-and-waiting in {r.repro.trace}"
    assert fail.t - since > QMAP_WATCHDOG_S, (since, fail.t)
    events = doc["traceEvents"]
    assert isinstance(events, list)
    # named in the viewer: on a CPU track (it ran before) or in its wake-up
    named = {str(e.get("args", {}).get("pid")) for e in events if isinstance(e, dict)}
    assert str(stalled.pid) in named
    assert tasks_named(events), "no task on any CPU track"
    cpus = {e["tid"] for e in events if e.get("ph") == "X" and e.get("pid") == CPU_PROCESS}
    assert cpus == {0, 1, 2, 3}
    assert any(e.get("cat") == "failure" for e in events)
    assert r.repro.trace is not None and r.repro.trace.window is not None
    assert r.repro.trace.window.stalled_pid == stalled.pid


@pytest.mark.parametrize("kernel", KERNELS)
def test_error_trace_ends_at_the_error_on_the_cpu_the_exit_names(kernel: str) -> None:
    r = run(kernel, ("-e", "100"), 8)
    assert r.verdict is Verdict.FAIL and r.ejection_reason == "scx_bpf_error", explain(r)
    assert r.repro is not None and r.repro.status is ReproStatus.REPRODUCED, explain(r)
    trace, _ = traced(r)
    m = re.search(r"EXIT: .* on CPU (\d+)", " ".join(r.repro.reasons))
    assert m, r.repro.reasons
    fail = failure_instant(trace)
    assert fail is not None and fail.site is not None, explain(r)
    assert fail.cpu == int(m.group(1)) == fail.site.cpu
    # the task the kernel says triggered the exit was being scheduled on that CPU right
    # then: running there, or woken or migrated there (the enqueue that hit the error)
    seen = last_seen_on(trace, fail.site.pid, fail.cpu, fail.t)
    assert seen is not None and fail.t - seen.t < 0.1, (seen, fail)
    # frozen when the agent saw the scheduler go: no scheduling goes on past the error
    # for the rest of the 8 s run
    last_switch = max(e.t for e in trace.events if e.name == "sched_switch")
    assert last_switch - fail.t < 2.0, (last_switch, fail.t)


def test_a_one_shot_fault_that_does_not_recur_is_flaky() -> None:
    """scx_qmap -e 100 as a declared one-shot fault (ktstr run --one-shot-sched-arg): the
    first run is ejected, the traced rerun runs without it and passes."""
    done = subprocess.run(
        [sys.executable, "-m", "ktstr.cli.__main__", "run", "--kernel", "7.2", "--scheduler",
         "scx_qmap", "--topology", "1,2,2,1", "--duration", "5",
         "--one-shot-sched-arg=-e", "--one-shot-sched-arg=100", "--json"],
        check=False, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert data["sched_args"][-2:] == ["-e", "100"]
    assert data["ejection_reason"] == "scx_bpf_error"
    repro = data["repro"]
    assert repro["status"] == "flaky" and repro["repro_verdict"] == "pass", repro
    assert any(n.startswith("flaky:") for n in data["notes"])
    assert Path(repro["trace"]["json_path"]).is_file()
    assert "--one-shot-sched-arg=-e" in data["reproducer"]
    assert "repro: flaky" in done.stderr  # the progress line names it
