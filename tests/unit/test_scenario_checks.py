"""Every check on worker reports recorded from real guests (tests/unit/data/scenario).

- ``halves.jsonl``: EEVDF, 7.2.13, 1n2l2c1t, cg_0 on CPUs 0-1 and cg_1 on 2-3, 3 cpu_spin
  workers each (isolation enabled).
- ``mixed.jsonl``: the canned ``mixed_workloads`` scenario (wake-up samples).
- ``neg.jsonl``: a SCHED_FIFO hog on CPU 1 and two FIFO priority-1 victims pinned there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr.declare.checks import Assert
from ktstr.declare.topology import Topology
from ktstr.guest.protocol import Event
from ktstr.results import checks as C
from ktstr.results.model import CheckOutcome
from ktstr.results.report import scenario_table
from ktstr.scenario import CgroupDef, CpusetSpec, Scenario, plan_scenario
from ktstr.scenario.plan import CgroupPlan
from ktstr.scenario.reports import (
    Spawned,
    WorkerReport,
    parse_spawned,
    parse_worker_reports,
)

DATA = Path(__file__).parent / "data" / "scenario"


def load(name: str) -> list[WorkerReport]:
    reports, bad = parse_worker_reports((DATA / name).read_text())
    assert bad == []
    return reports


def failed(outcomes: list[CheckOutcome]) -> list[CheckOutcome]:
    return [o for o in outcomes if not o.passed]


def halves_plan() -> tuple[CgroupPlan, ...]:
    s = Scenario.from_defs([CgroupDef("cg_0", workers=3, cpuset=CpusetSpec.disjoint(0, 2)),
                            CgroupDef("cg_1", workers=3, cpuset=CpusetSpec.disjoint(1, 2))])
    return plan_scenario(s, Topology(1, 2, 2, 1), duration_s=3).cgroups


def test_recorded_reports_parse_with_kernel_counters() -> None:
    rs = load("halves.jsonl")
    assert len(rs) == 6
    r = rs[0]
    assert r.started and r.work_units > 0 and r.run_ns > 0 and r.timeslices > 0
    assert r.cgroup_at_start == f"/ktstr/{r.cgroup}"
    assert 0 <= r.off_cpu_pct <= 100 and r.work_rate > 0
    mixed = {r.work_type: r for r in load("mixed.jsonl")}
    assert mixed["pipe_io"].wake_samples > 0 and mixed["pipe_io"].wake_p99_ns
    assert mixed["cpu_spin"].wake_p99_ns is None


def test_a_bad_line_is_reported_not_fatal() -> None:
    text = (DATA / "neg.jsonl").read_text() + "{not json\n"
    reports, bad = parse_worker_reports(text)
    assert len(reports) == 3 and bad and "line 4" in bad[0]


def test_starvation_names_each_starved_worker() -> None:
    out = C.check_starvation(load("neg.jsonl"))
    assert len(out) == 2 and not any(o.passed for o in out)
    assert "cgroup victims, worker 0 (pid 251): 0 work units" in out[0].detail
    assert out[0].value == 0 and out[0].threshold == 1
    ok = C.check_starvation(load("halves.jsonl"))
    assert [o.passed for o in ok] == [True] and "worst" in ok[0].detail


def test_fairness_spread_per_cgroup() -> None:
    rs = load("halves.jsonl")
    ok = C.check_fairness(rs, 15)
    assert ok[0].passed and ok[0].value is not None and 0 < ok[0].value < 15
    out = failed(C.check_fairness(rs, 5))
    assert out, "a 5 % limit must trip on 3 workers sharing 2 CPUs"
    assert out[0].detail.startswith("cgroup cg_0: off-CPU spread")
    assert out[0].threshold == 5 and out[0].value is not None and out[0].value > 5
    assert C.check_fairness(rs, 5, skip=["cg_0", "cg_1"])[0].passed


def test_gap_threshold_is_scaled() -> None:
    rs = load("halves.jsonl")
    worst_ms = max(r.max_gap_ns for r in rs) / 1e6
    assert C.check_gap(rs, 2000)[0].passed
    out = failed(C.check_gap(rs, worst_ms / 2))
    assert out and "longest gap between work units" in out[0].detail
    assert all(o.passed for o in C.check_gap(rs, worst_ms / 2, scale=6))


def test_isolation_against_every_cpuset_the_cgroup_had() -> None:
    rs, plan = load("halves.jsonl"), halves_plan()
    assert C.check_isolation(rs, plan)[0].passed
    escaped = [r.model_copy(update={"cpus": (0, 3)}) if r.cgroup == "cg_0" and r.index == 1
               else r for r in rs]
    out = failed(C.check_isolation(escaped, plan))
    assert len(out) == 1
    assert out[0].detail.startswith("cgroup cg_0, worker 1 (pid")
    assert "ran on CPU(s) 3 outside its cpuset 0-1" in out[0].detail


def test_throughput_cv_work_rate_wake_latency_and_migrations() -> None:
    rs = load("mixed.jsonl")
    assert C.check_throughput_cv(rs, 1.0)[0].passed
    assert failed(C.check_throughput_cv(rs, 0.001))[0].detail.startswith("cgroup ")
    slow = min(rs, key=lambda r: r.work_rate)
    out = failed(C.check_work_rate(rs, slow.work_rate + 1))
    assert any(f"worker {slow.index} (pid {slow.pid})" in o.detail for o in out)
    assert all("units/s <" in o.detail for o in out)
    worst_p99 = max(r.wake_p99_ns or 0 for r in rs) / 1e3
    assert C.check_wake_latency(rs, worst_p99 + 1)[0].passed
    lat = failed(C.check_wake_latency(rs, worst_p99 / 2))
    assert lat and "p99 wake-up latency" in lat[0].detail
    assert all(r.wake_p99_ns is not None for r in rs if any(
        f"(pid {r.pid})" in o.detail for o in lat))
    assert C.check_migration_ratio(rs, 1.0)[0].passed
    mig = failed(C.check_migration_ratio(rs, 0.0001))
    assert mig and "migrations per context switch" in mig[0].detail


def test_reports_and_placement() -> None:
    rs = load("halves.jsonl")
    spawned = [Spawned(key="c0", index=r.index, pid=r.pid, cgroup=r.cgroup) for r in rs]
    assert C.check_reports(rs, spawned, "/ktstr")[0].passed
    lost = [*spawned, Spawned(key="c0", index=9, pid=999, cgroup="cg_0")]
    assert "worker 9 (pid 999) wrote no report" in failed(C.check_reports(rs, lost))[0].detail
    moved = [rs[0].model_copy(update={"cgroup_at_start": "/"}), *rs[1:]]
    out = failed(C.check_reports(moved, spawned, "/ktstr"))
    assert out[0].name == C.PLACEMENT and "not '/ktstr/cg_" in out[0].detail
    broken = [rs[0].model_copy(update={"error": "joining x: No such file", "started": False})]
    assert "could not start: joining x" in failed(C.check_reports(broken, []))[0].detail
    assert parse_spawned("c0 0 210 cg_0\nc1 1 211 outer/a\njunk\n")[1].cgroup == "outer/a"


def test_run_checks_follows_the_assert_chain() -> None:
    rs, plan = load("halves.jsonl"), halves_plan()
    names = {o.name for o in C.run_checks(rs, Assert.chain(), cgroups=plan)}
    assert names == {C.REPORTS, C.STARVATION, C.FAIRNESS, C.GAP}
    every = Assert(isolation=True, max_throughput_cv=9, min_work_rate=1,
                   max_p99_wake_latency_us=1e9, max_migration_ratio=9)
    names = {o.name for o in C.run_checks(rs, Assert.chain(every), cgroups=plan)}
    assert {C.ISOLATION, C.THROUGHPUT_CV, C.WORK_RATE, C.WAKE_P99, C.MIGRATION_RATIO} <= names
    off = Assert(not_starved=False)
    assert C.STARVATION not in {o.name for o in C.run_checks(load("neg.jsonl"),
                                                             Assert.chain(off))}


def test_scenario_results_and_table_from_guest_blobs() -> None:
    from ktstr.declare.scheduler import EEVDF
    from ktstr.run.request import RunRequest
    from ktstr.scenario.runner import scenario_results

    defs = [CgroupDef("hog", workers=1, sched_policy="fifo", priority=50,  # type: ignore[arg-type]
                      affinity=CpusetSpec.exact([1])),
            CgroupDef("victims", workers=2, sched_policy="fifo", priority=1,  # type: ignore[arg-type]
                      affinity=CpusetSpec.exact([1]))]
    req = RunRequest(scheduler=EEVDF, topology=Topology(1, 2, 2, 1), duration_s=3,
                     scenario=Scenario.from_defs(defs))
    blobs = {"worker_reports": (DATA / "neg.jsonl").read_text(),
             "worker_spawned": "c0 0 215 hog\nc1 0 251 victims\nc1 1 252 victims\n"}
    events = [Event(t="event", name="scn_op_failed", uptime_s=1.0,
                    fields={"op": "cpuset", "cgroup": "x", "error": "EINVAL"})]
    checks, stats = scenario_results(req, events, blobs, gap_scale=6.0)
    bad = failed(checks)
    assert [c.name for c in bad] == ["scenario ops", C.STARVATION, C.STARVATION]
    assert stats["gap_threshold_ms"] == 12000
    assert stats["cgroups"]["victims"]["work_units"] == 0
    assert stats["workers"][0]["cgroup"] == "hog"
    lines = scenario_table(stats, colour=False)
    assert lines[0].split()[:4] == ["CGROUP", "TYPE", "POLICY", "WORKERS"]
    victims = next(line for line in lines if line.startswith("victims"))
    assert " 0* " in victims  # the fewest units, marked as the worst
    none, _ = scenario_results(req, [], {}, gap_scale=1.0)
    assert "sent no worker reports" in failed(none)[0].detail


@pytest.mark.parametrize("name", ["halves.jsonl", "mixed.jsonl", "neg.jsonl"])
def test_every_failed_outcome_names_cgroup_worker_value_and_threshold(name: str) -> None:
    strict = Assert(max_spread_pct=0.01, max_gap_ms=0.001, isolation=True,
                    max_throughput_cv=0.0001, min_work_rate=1e9,
                    max_p99_wake_latency_us=0.001, max_migration_ratio=0.00001)
    plan = (CgroupPlan(name="cg_0", key="c0", work_type="cpu_spin",  # type: ignore[arg-type]
                       sched_policy="normal", cpuset_ever=True,  # type: ignore[arg-type]
                       allowed_cpus=(0,)),)
    for o in failed(C.run_checks(load(name), Assert.chain(strict), cgroups=plan)):
        assert o.detail.startswith("cgroup "), o
        assert o.value is not None and o.threshold is not None, o
