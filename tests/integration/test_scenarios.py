"""Scenarios on a real kernel under QEMU: cgroups of ktstr-worker processes, judged.

Issue 6's acceptance cases (7.2.13, topology 1,2,2,1, a few seconds each).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ktstr import (
    EEVDF,
    Assert,
    CgroupDef,
    CpusetSpec,
    Hold,
    Op,
    Scenario,
    SchedPolicy,
    Step,
    Topology,
    run_defs,
)
from ktstr.results.model import RunResult, Verdict
from ktstr.run.request import RunRequest
from ktstr.schedulers.examples import SCX_SIMPLE

pytestmark = pytest.mark.vm

T1221 = Topology(1, 2, 2, 1)


def base(scheduler: object = EEVDF, duration: float = 4) -> RunRequest:
    # the first run is judged here; the traced rerun: test_repro_trace.py
    return RunRequest(scheduler=scheduler, kernel="7.2", topology=T1221,  # type: ignore[arg-type]
                      duration_s=duration, repro=False)


def explain(r: RunResult) -> str:
    lines = [r.summary_line(), *(f"{c.name}: {c.passed} {c.detail}" for c in r.checks)]
    return "\n".join([*lines, "--- console ---", r.console_tail[-3000:]])


def check(r: RunResult, name: str) -> list[dict[str, object]]:
    return [c.model_dump() for c in r.checks if c.name == name]


def test_cli_steady_two_cgroups_of_two_workers_under_eevdf() -> None:
    """Acceptance 1 (EEVDF), through `ktstr run --scenario steady --json`."""
    done = subprocess.run(
        [sys.executable, "-m", "ktstr.cli.__main__", "run", "--kernel", "7.2", "--scheduler",
         "eevdf", "--topology", "1,2,2,1", "--duration", "4", "--scenario", "steady", "--json"],
        check=False, capture_output=True, text=True, timeout=900)
    r = RunResult.model_validate(json.loads(done.stdout))
    assert done.returncode == 0 and r.verdict is Verdict.PASS, explain(r)
    cgroups = r.stats["scenario"]["cgroups"]
    assert set(cgroups) == {"cg_0", "cg_1"}
    assert all(c["workers"] == 2 and c["spread_pct"] is not None for c in cgroups.values())
    (fair,) = check(r, "fairness")
    assert fair["passed"] and fair["value"] is not None and fair["threshold"] == 15
    assert "--scenario steady" in r.reproducer


def test_two_cgroups_of_two_cpu_spin_workers_under_scx_simple() -> None:
    """Acceptance 1 (scx_simple), through the run_defs API the pytest plugin uses."""
    r = run_defs(base(SCX_SIMPLE), [CgroupDef("cg_0").workers(2), CgroupDef("cg_1").workers(2)])
    assert r.verdict is Verdict.PASS, explain(r)
    assert r.sched_ops == "simple"
    workers = r.stats["scenario"]["workers"]
    assert len(workers) == 4 and all(w["work_units"] > 0 for w in workers)
    assert all(w["run_ms"] > 0 and w["timeslices"] > 0 for w in workers)
    (fair,) = check(r, "fairness")
    assert fair["passed"] and fair["value"] is not None


def test_disjoint_cpuset_halves_stay_isolated() -> None:
    """Acceptance 2: each half's workers run only on its CPUs, isolation enabled."""
    defs = [CgroupDef("left", workers=2, cpuset=CpusetSpec.disjoint(0, 2)),
            CgroupDef("right", workers=2, cpuset=CpusetSpec.disjoint(1, 2))]
    r = run_defs(base(duration=3), defs, checks=Assert(isolation=True))
    assert r.verdict is Verdict.PASS, explain(r)
    (iso,) = check(r, "isolation")
    assert iso["passed"] and "4 worker(s)" in str(iso["detail"])
    cg = r.stats["scenario"]["cgroups"]
    assert set(cg["left"]["cpus"].replace("-", ",").split(",")) <= {"0", "1"}
    assert set(cg["right"]["cpus"].replace("-", ",").split(",")) <= {"2", "3"}


def test_fifo_hog_starves_pinned_workers_and_the_run_fails_naming_them() -> None:
    """Acceptance 3 (must FAIL): two SCHED_FIFO priority-1 workers pinned to CPU 1 under
    a SCHED_FIFO priority-50 hog never run; the starvation check names each of them."""
    pinned = CpusetSpec.exact([1])
    defs = [CgroupDef("hog", workers=1, sched_policy=SchedPolicy.FIFO, priority=50,
                      affinity=pinned),
            CgroupDef("victims", workers=2, sched_policy=SchedPolicy.FIFO, priority=1,
                      affinity=pinned)]
    r = run_defs(base(duration=3), defs)
    assert r.verdict is Verdict.FAIL, explain(r)
    starved = [c for c in r.checks if c.name == "starvation" and not c.passed]
    assert {c.detail.split(" (pid")[0] for c in starved} == {
        "cgroup victims, worker 0", "cgroup victims, worker 1"}, explain(r)
    assert all(c.value == 0 and c.threshold == 1 for c in starved)
    assert any("starvation failed: cgroup victims, worker" in x for x in r.reasons)
    assert r.stats["scenario"]["cgroups"]["hog"]["work_units"] > 0


def test_steps_add_a_cgroup_resize_cpusets_and_remove_a_cgroup() -> None:
    """Acceptance 4: the guest applies each step mid-run, and the checks still hold."""
    steps = [
        Step(ops=[Op.add_cgroup(CgroupDef("cg_0", workers=2, cpuset=CpusetSpec.range(0, 0.5))),
                  Op.add_cgroup(CgroupDef("cg_1", workers=2, cpuset=CpusetSpec.range(0.5, 1)))],
             hold=Hold.frac(0.3)),
        Step(ops=[Op.add_cgroup(CgroupDef("cg_2", workers=1)),
                  Op.set_cpuset("cg_1", CpusetSpec.range(0.75, 1)),
                  Op.set_cpuset("cg_0", CpusetSpec.range(0, 0.75))],
             hold=Hold.frac(0.4)),
        Step(ops=[Op.remove_cgroup("cg_2")], hold=Hold.frac(0.3)),
    ]
    r = run_defs(base(duration=4), Scenario.from_steps(steps, name="resize"),
                 checks=Assert(isolation=True))
    assert r.verdict is Verdict.PASS, explain(r)
    seen = [(e.name, e.fields.get("cgroup"), e.fields.get("cpus")) for e in r.timeline
            if e.name.startswith("scn_")]
    assert ("scn_cgroup_added", "cg_2", None) in seen
    assert ("scn_cpuset", "cg_0", "0-2") in seen and ("scn_cpuset", "cg_1", "3") in seen
    assert ("scn_cgroup_removed", "cg_2", None) in seen
    order = [n for n, *_ in seen]
    assert order.index("scn_cgroup_removed") > order.index("scn_cpuset")
    cg2 = r.stats["scenario"]["cgroups"]["cg_2"]
    assert cg2["workers"] == 1 and cg2["work_units"] > 0
