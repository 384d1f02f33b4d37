"""Glue between a ``RunRequest`` with a scenario and the run layer: what the agent is
told to run, and what the guest's reports mean (checks and stats). The run layer calls
this module; ``ktstr.run.execute.run_defs`` is the entry point that runs a scenario.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ktstr.declare.checks import Assert
from ktstr.declare.payload import ExitCodeCheck
from ktstr.guest.protocol import Event, ScenarioWire
from ktstr.results.checks import by_cgroup, cpu_busy, run_checks
from ktstr.results.model import CheckOutcome
from ktstr.scenario.cgroup import CgroupDef
from ktstr.scenario.cpuset import cpulist
from ktstr.scenario.plan import DEFAULT_ROOT, DEFAULT_WORKERS, ScenarioPlan, plan_scenario
from ktstr.scenario.render import wire_plan
from ktstr.scenario.reports import WorkerReport, parse_spawned, parse_worker_reports
from ktstr.scenario.scenario import Scenario
from ktstr.scenario.steps import RunPayload, Step

if TYPE_CHECKING:
    from ktstr.run.request import RunRequest

OPS_CHECK = "scenario ops"


def plan_for(request: RunRequest) -> ScenarioPlan:
    """The request's scenario planned on its topology (pure)."""
    assert request.scenario is not None
    sched = request.scheduler
    return plan_scenario(
        request.scenario, request.topology, duration_s=request.duration_s,
        default_workers=request.workers if request.workers is not None else DEFAULT_WORKERS,
        root=sched.cgroup_parent.path if sched.cgroup_parent else DEFAULT_ROOT,
    )


def scenario_wire(request: RunRequest) -> ScenarioWire | None:
    """The request's scenario as the agent runs it (``None`` without one); validates."""
    if request.scenario is None:
        return None
    return wire_plan(plan_for(request))


def checks_for(request: RunRequest) -> Assert:
    """Defaults -> scheduler -> test (``request.checks``)."""
    return Assert.chain(request.scheduler.assert_, request.checks)


def scenario_results(
    request: RunRequest,
    events: Sequence[Event],
    blobs: Mapping[str, str],
    *,
    gap_scale: float,
) -> tuple[list[CheckOutcome], dict[str, Any]]:
    """Checks and per-cgroup/per-worker stats from what the guest sent (pure)."""
    plan = plan_for(request)
    reports, bad = parse_worker_reports(blobs.get("worker_reports", ""))
    spawned = parse_spawned(blobs.get("worker_spawned", ""))
    assert_ = checks_for(request)
    checks: list[CheckOutcome] = []
    failed_ops = [e for e in events if e.name == "scn_op_failed"]
    checks += [CheckOutcome(name=OPS_CHECK, passed=False,
                            detail=f"{e.fields.get('op')} on cgroup {e.fields.get('cgroup')} "
                                   f"failed: {e.fields.get('error')}") for e in failed_ops]
    checks += [CheckOutcome(name="worker reports", passed=False,
                            detail=f"unreadable report {b}") for b in bad]
    if "worker_reports" not in blobs:
        checks.append(CheckOutcome(name="worker reports", passed=False,
                                   detail="the guest sent no worker reports (the scenario "
                                          "did not finish)"))
    else:
        busy = (cpu_busy(blobs["cpu_stat_begin"], blobs["cpu_stat_end"])
                if "cpu_stat_begin" in blobs and "cpu_stat_end" in blobs else None)
        checks += run_checks(reports, assert_, cgroups=plan.cgroups, spawned=spawned,
                             root=plan.root, gap_scale=gap_scale, busy=busy)
    pchecks, pstats = payload_outcomes(request.scenario, events, blobs)
    checks += pchecks
    stats = scenario_stats(plan, reports)
    if pstats:
        stats["payloads"] = pstats
    stats["gap_threshold_ms"] = (assert_.max_gap_ms or 0) * gap_scale
    stats["gap_scale"] = gap_scale
    stats["thresholds"] = assert_.model_dump(exclude_none=True)
    if "worker_logs" in blobs:
        stats["worker_logs_tail"] = "\n".join(blobs["worker_logs"].splitlines()[-20:])
    return checks, stats


def payload_outcomes(
    scenario: Scenario | None, events: Sequence[Event], blobs: Mapping[str, str],
) -> tuple[list[CheckOutcome], dict[str, Any]]:
    """The declared checks of every payload the scenario ran (exit code; metrics parsed
    from its combined output). A payload the scenario killed on purpose is not judged
    by its exit code; one that outlived its ``wait_payload`` timeout fails."""
    from ktstr.results.metrics import evaluate, parse_metrics, with_exit_check

    if scenario is None:
        return [], {}
    ops = {op.handle: op for step in scenario.steps for op in step.ops
           if isinstance(op, RunPayload)}
    checks: list[CheckOutcome] = []
    stats: dict[str, Any] = {}
    for e in events:
        if e.name != "scn_payload_exit" or e.fields.get("id") not in ops:
            continue
        pid, how = e.fields["id"], e.fields.get("how", "")
        op, log = ops[pid], blobs.get(f"payload_{pid}", "")
        code = int(e.fields["status"]) if e.fields.get("status", "").isdigit() else None
        metrics = parse_metrics(op.payload.output, log, {})
        stats[pid] = {"payload": op.payload.name, "exit_code": code, "how": how,
                      "metrics": metrics, "output_tail": "\n".join(log.splitlines()[-15:])}
        if how == "timeout":
            checks.append(CheckOutcome(name=f"payload {pid}", passed=False,
                                       detail=f"payload {pid} still ran at its wait timeout"))
        declared = with_exit_check(op.payload.checks_with())
        if how == "killed":
            declared = [c for c in declared if not isinstance(c, ExitCodeCheck)]
        for c in evaluate(declared, metrics, code):
            checks.append(c.model_copy(update={"name": f"payload {pid}: "
                                               + c.name.removeprefix("payload: ")}))
    return checks, stats


def _r(x: float, nd: int = 2) -> float:
    return round(x, nd)


def worker_stats(r: WorkerReport) -> dict[str, Any]:
    return {
        "cgroup": r.cgroup, "index": r.index, "pid": r.pid, "work_type": r.work_type,
        "policy": r.policy, "nice": r.nice, "started": r.started, "work_units": r.work_units,
        "work_rate": _r(r.work_rate, 1), "off_cpu_pct": _r(r.off_cpu_pct),
        "wall_ms": _r(r.wall_ns / 1e6, 1), "run_ms": _r(r.run_ns / 1e6, 1),
        "wait_ms": _r(r.wait_ns / 1e6, 1), "timeslices": r.timeslices,
        "voluntary_switches": r.voluntary_switches,
        "involuntary_switches": r.involuntary_switches, "migrations": r.migrations,
        "cpus": cpulist(r.cpus), "max_gap_ms": _r(r.max_gap_ns / 1e6),
        "wake_samples": r.wake_samples,
        "wake_p50_us": None if r.wake_p50_ns is None else _r(r.wake_p50_ns / 1e3, 1),
        "wake_p99_us": None if r.wake_p99_ns is None else _r(r.wake_p99_ns / 1e3, 1),
        "error": r.error,
    }


def cgroup_stats(rs: Sequence[WorkerReport]) -> dict[str, Any]:
    started = [r for r in rs if r.started]
    offs = [r.off_cpu_pct for r in started]
    rates = [r.work_rate for r in started]
    p99 = [r.wake_p99_ns for r in started if r.wake_p99_ns is not None]
    migr = [r.migrations / r.switches for r in started if r.migrations is not None
            and r.switches]
    mean = statistics.fmean(rates) if rates else 0.0
    return {
        "workers": len(rs),
        "work_units": sum(r.work_units for r in rs),
        "spread_pct": _r(max(offs) - min(offs)) if len(offs) >= 2 else None,
        "off_cpu_pct_max": _r(max(offs)) if offs else None,
        "max_gap_ms": _r(max(r.max_gap_ns for r in started) / 1e6) if started else None,
        "wake_p99_us": _r(max(p99) / 1e3, 1) if p99 else None,
        "migration_ratio": _r(max(migr), 3) if migr else None,
        "rate_mean": _r(mean, 1),
        "throughput_cv": _r(statistics.pstdev(rates) / mean, 3) if len(rates) >= 2 and mean
        else None,
        "cpus": cpulist({c for r in rs for c in r.cpus}),
    }


def scenario_stats(plan: ScenarioPlan, reports: Sequence[WorkerReport]) -> dict[str, Any]:
    groups = by_cgroup(reports)
    return {
        "name": plan.name, "root": plan.root, "holds_s": plan.total_s,
        "cgroups": {c.name: {**cgroup_stats(groups.get(c.name, [])),
                             "work_type": c.work_type.value, "policy": c.sched_policy.value,
                             "cpuset": cpulist(c.allowed_cpus) if c.cpuset_ever else ""}
                    for c in plan.cgroups},
        "workers": [worker_stats(r) for r in sorted(reports, key=lambda r: (r.cgroup, r.index))],
    }


def request_fields(
    defs_or_steps: Scenario | Sequence[CgroupDef] | Sequence[Step],
    *,
    checks: Assert | None = None,
) -> dict[str, Any]:
    """``RunRequest`` fields that run ``defs_or_steps`` with these check overrides:
    ``RunRequest(**base, **request_fields(defs, checks=...))``."""
    fields: dict[str, Any] = {"scenario": Scenario.coerce(defs_or_steps)}
    if checks is not None and checks.model_dump(exclude_none=True):
        fields["checks"] = checks
    return fields
