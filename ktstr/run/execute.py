"""``run_scheduler``: one scheduler test from request to verdict."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ktstr.declare.checks import Assert
from ktstr.declare.spec import DiscoverSpec, PathSpec
from ktstr.errors import UserError
from ktstr.guest.protocol import Event, RunPlan, ScenarioWire
from ktstr.kernel.cache import CachedKernel, KernelCache
from ktstr.kernel.resolve import naming_spec, resolve_kernel
from ktstr.results.judge import SchedJudgement, judge_scheduler, setup_errors, timeline
from ktstr.results.metrics import evaluate, parse_metrics, with_exit_check
from ktstr.results.model import (
    CheckOutcome,
    KernelFacts,
    RunResult,
    SchedOutcome,
    Timings,
    Verdict,
    VmOutcome,
)
from ktstr.run.boot import BootOutcome, boot_retrying
from ktstr.run.image import GuestImage, guest_files, guest_image, payload_guest_path
from ktstr.run.params import run_plan, scheduler_segment
from ktstr.run.probe import select_accel
from ktstr.run.repro import with_repro, write_trace
from ktstr.run.request import WORKLOAD_BINARIES, RunRequest
from ktstr.run.rundir import finish_run_dir, make_run_dir
from ktstr.run.stats import workload_stats
from ktstr.scenario import runner as scenario_runner
from ktstr.scenario.cgroup import CgroupDef
from ktstr.scenario.scenario import Scenario
from ktstr.scenario.steps import Step
from ktstr.vm.argv import kernel_cmdline
from ktstr.vm.host import AccelChoice, timeout_scale
from ktstr.vm.snapshot import snapshots_enabled

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


def kernel_facts(kernel: CachedKernel, spec: str | None) -> KernelFacts:
    facts = kernel.config_facts.model_dump(mode="json")
    return KernelFacts(
        spec=spec or "", version=kernel.version, release=kernel.release or "",
        sched_ext=kernel.sched_ext,
        config={k: str(v) for k, v in facts.items() if v is not None},
        image=str(kernel.image_path),
    )


def scheduler_binary(request: RunRequest, kernel: CachedKernel) -> Path | None:
    spec = request.scheduler.binary
    if isinstance(spec, PathSpec):
        path = Path(spec.binary_path)
        if not path.is_file():
            raise UserError(f"scheduler {request.scheduler.name!r}: binary "
                            f"{spec.binary_path} does not exist")
        return path
    if not isinstance(spec, DiscoverSpec):
        return None
    from ktstr.schedbin import discover_scheduler

    return discover_scheduler(spec.name, kernel.release or kernel.version)


def payload_argv(request: RunRequest) -> list[str] | None:
    """The payload's guest command line: its executable where the image puts it, its
    default args, the test's args."""
    p = request.payload
    if p is None:
        return None
    return [payload_guest_path(p), *p.args_with(request.payload_args)]


#: lines of the payload's stdout and stderr kept in the result (the whole of each is in
#: the run directory as payload.stdout / payload.stderr)
TAIL_LINES = 40

#: unscaled slack a payload gets past the run's duration before the guest kills it
PAYLOAD_SLACK_S = 60.0


def guest_plan(request: RunRequest, accel: AccelChoice, expected: Sequence[str],
               scenario: ScenarioWire | None) -> RunPlan:
    """The agent's plan for one boot attempt: the guest's bounds follow ``accel``."""
    sched = request.scheduler
    topo = request.topology
    checks = scenario_runner.checks_for(request)
    return run_plan(
        scheduler=sched, sched_args=request.sched_args,
        workload=request.effective_workload.value, workers=request.worker_count,
        duration_s=request.duration_s,
        attach_timeout_s=accel.bound(request.attach_timeout_s, topo),
        stop_timeout_s=accel.bound(request.stop_timeout_s, topo),
        payload_argv=payload_argv(request),
        payload_timeout_s=request.duration_s + accel.bound(PAYLOAD_SLACK_S, topo),
        payload_own_pgrp=not (request.payload is not None
                              and request.payload.uses_parent_pgrp),
        require_alive=checks.scheduler_alive is not False,
        scenario=scenario, expected=expected, trace=request.trace,
    )


def run_scheduler(request: RunRequest, progress: Progress = _noop) -> RunResult:
    """Run one cell: boot, start the scheduler, prove it attached, run the workload,
    judge; on FAIL rerun it once with a scheduling trace (``ktstr.run.repro``, the one
    place that decides; ``request.repro=False`` turns it off)."""
    return with_repro(request, run_once(request, progress), run_once, progress)


def run_once(request: RunRequest, progress: Progress = _noop) -> RunResult:
    """Boot, start the scheduler, prove it attached, run the workload, judge."""
    t0 = time.monotonic()
    sched = request.scheduler
    progress(f"resolving kernel {request.kernel or '(default)'}")
    kernel = resolve_kernel(request.kernel)
    facts = kernel_facts(kernel, request.kernel)
    label = naming_spec(kernel, request.kernel, KernelCache())
    base = {
        "scheduler": sched.name, "kernel": facts, "topology_requested": request.topology.label,
        "workload": (f"payload {request.payload.name}" if request.payload
                     else f"scenario {request.scenario.name}" if request.scenario
                     else request.workload.value), "duration_s": request.duration_s,
        "sched_args": request.sched_args, "reproducer": request.reproducer(label),
    }
    if sched.binary.has_active_scheduling and not kernel.sched_ext:
        return RunResult(
            verdict=Verdict.SKIP, sched_outcome=SchedOutcome.NONE,
            reasons=[f"kernel {kernel.release or kernel.version} has no sched_ext "
                     f"(CONFIG_SCHED_CLASS_EXT is not set); {sched.name} needs it"],
            **base,
        )
    binary = scheduler_binary(request, kernel)
    accel = select_accel(request.accel, kernel)
    progress(f"accelerator: {accel.describe()}")
    run_dir = request.run_dir or make_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario = scenario_runner.scenario_wire(request)  # validates the scenario
    files = guest_files(
        scheduler=sched, scheduler_binary=binary, kernel=kernel,
        tools=WORKLOAD_BINARIES.get(request.workload, ()),
        include_files=request.include_files,
        payloads=[*([request.payload] if request.payload else []),
                  *(request.scenario.payloads() if request.scenario else [])],
    )
    progress("building initramfs")
    image = guest_image(files, kernel,
                        scheduler_segment(sched, inline_config=request.inline_config))

    def initrd_for(choice: AccelChoice) -> tuple[GuestImage, RunPlan]:
        return image, guest_plan(request, choice, files.expected, scenario)

    work_s = request.attach_timeout_s + request.duration_s + 2 * request.stop_timeout_s + 30
    if request.payload is not None:
        work_s += PAYLOAD_SLACK_S
    if request.scenario is not None:  # worker start/stop and payload waits
        work_s += 60
    if request.watchdog_timeout_s is not None:
        work_s = request.watchdog_timeout_s
    cmdline = kernel_cmdline(user_kargs=sched.kargs)
    progress(f"booting {kernel.release or kernel.version} with {request.topology.label} "
             f"({request.topology.total_cpus} vCPUs)")
    outcome = boot_retrying(make_initrd=initrd_for, kernel=kernel.image_path,
                            cmdline=cmdline, topology=request.topology, accel=accel,
                            run_dir=run_dir, work_timeout_s=work_s,
                            memory_mb=request.memory_mb, name=sched.name, progress=progress,
                            snapshots=snapshots_enabled(request.cold_boot),
                            budget=request.cpu_budget)
    result = judge_run(request, outcome, base, outcome.accel or accel,
                       time.monotonic() - t0)
    keep_outputs(run_dir, outcome)
    if request.trace is not None and "trace" in outcome.blobs:
        result = result.model_copy(update={"trace": write_trace(
            run_dir, outcome.blobs["trace"], outcome.events, sched_log=result.sched_log,
            kernel_log=result.kernel_sched_ext_log,
            reason="; ".join(result.reasons)[:200], title=result.summary_line()[:200])})
    kept = finish_run_dir(run_dir, keep=request.keep or not result.passed)
    if kept:
        result = result.model_copy(update={"run_dir": str(run_dir)})
    else:
        result = result.model_copy(update={"console_path": ""})
    return result


#: blobs kept whole in the run directory, as files named here
OUTPUT_FILES = {
    "payload_stdout": "payload.stdout", "payload_stderr": "payload.stderr",
    "sched_log": "scheduler.log", "dmesg_sched_ext": "dmesg-sched_ext.txt",
    "workload_log": "workload.log", "worker_logs": "worker-logs.txt",
}


def keep_outputs(run_dir: Path, outcome: BootOutcome) -> None:
    """Every output the guest sent, whole, in the run directory (kept with ``--keep`` or
    on failure): the payload's stdout and stderr, the scheduler's log, ..."""
    for name, text in outcome.blobs.items():
        fname = OUTPUT_FILES.get(name)
        if fname is None and name.startswith("payload_"):
            fname = f"{name}.log"  # scenario payloads: payload_<id>
        if fname is not None:
            (run_dir / fname).write_text(text)


def _first(events: Sequence[Event], *names: str, after: float | None = None) -> Event | None:
    for e in events:
        if e.name in names and (after is None or e.uptime_s >= after):
            return e
    return None


def run_timings(request: RunRequest, outcome: BootOutcome, judgement: SchedJudgement,
                total_s: float) -> Timings:
    """Boot, attach, how long the workload ran and how long the scheduler stayed."""
    ev = outcome.events
    attach_s = (judgement.attach_t - judgement.start_t
                if judgement.attach_t is not None and judgement.start_t is not None else None)
    run_s = None
    began = _first(ev, "workload_started", "scenario_begin")
    if began is not None:
        ended = _first(ev, "workload_stopped", "payload_exit", "scenario_end",
                       after=began.uptime_s)
        if ended is not None:
            run_s = ended.uptime_s - began.uptime_s
    sched_run_s = None
    if judgement.attach_t is not None:
        gone = _first(ev, "sched_detached", "sched_exited", "sched_stopped",
                      after=judgement.attach_t)
        if gone is not None:
            sched_run_s = gone.uptime_s - judgement.attach_t
    return Timings(boot_s=outcome.boot_s, attach_s=attach_s, run_s=run_s,
                   sched_run_s=sched_run_s, total_s=total_s)


def judge_run(
    request: RunRequest,
    outcome: BootOutcome,
    base: dict[str, object],
    accel: AccelChoice,
    total_s: float,
) -> RunResult:
    """Turn what the VM reported into the verdict (pure apart from the models)."""
    from ktstr.guest.topology import topology_diff

    sched = request.scheduler
    assert_ = scenario_runner.checks_for(request)
    sched_log = outcome.blobs.get("sched_log", "")
    dmesg = outcome.blobs.get("dmesg_sched_ext", "")
    judgement = judge_scheduler(
        outcome.events, has_active_scheduling=sched.binary.has_active_scheduling,
        sched_log=sched_log, dmesg=dmesg,
        attach_bound=accel.explain(request.attach_timeout_s, request.topology))
    reasons: list[str] = []
    notes: list[str] = []
    verdict = Verdict.PASS
    if outcome.emulator_fault:
        notes.append(f"after an emulator fault under multi-threaded TCG "
                     f"({outcome.emulator_fault.strip()[-160:]}) this run was retried with "
                     "thread=single; the verdict is the retry's")
    diff = topology_diff(request.topology, outcome.seen) if outcome.seen else []
    setup = setup_errors(outcome.events)
    if outcome.vm_outcome is VmOutcome.CRASHED:
        verdict = Verdict.FAIL
        reasons.append(f"crashed: kernel panic: {outcome.detail}")
    elif outcome.vm_outcome is not VmOutcome.OK:
        verdict = Verdict.ERROR
        reasons.append(f"{outcome.vm_outcome.value}: {outcome.detail}")
    if setup:
        # the scheduler never started: a broken test setup is not the scheduler's failure
        verdict = Verdict.ERROR if verdict is Verdict.PASS else verdict
        reasons.extend(setup)
    else:
        sched_reasons = judgement.reasons
        ran_then_left = judgement.attach_t is not None and judgement.outcome in (
            SchedOutcome.EJECTED, SchedOutcome.DIED)
        if ran_then_left and assert_.scheduler_alive is False:
            notes.extend(f"{r} (allowed: scheduler_alive=False)" for r in sched_reasons)
            sched_reasons = []
        if sched_reasons and verdict is not Verdict.ERROR:
            verdict = Verdict.FAIL
        reasons.extend(sched_reasons)
    if diff and verdict is Verdict.PASS:
        verdict = Verdict.ERROR
        reasons.append("topology mismatch: " + "; ".join(diff[:5]))
    stats = workload_stats(outcome.events, outcome.blobs)
    checks: list[CheckOutcome] = []
    if request.payload is not None and not setup:
        checks, pstats = payload_results(request, outcome)
        stats["payload"] = pstats
        failed = [c for c in checks if not c.passed]
        if failed and verdict is Verdict.PASS:
            verdict = Verdict.FAIL
        reasons.extend(f"{c.name} failed: {c.detail}" for c in failed)
    if request.scenario is not None and not setup:
        schecks, stats["scenario"] = scenario_runner.scenario_results(
            request, outcome.events, outcome.blobs,
            gap_scale=timeout_scale(accel.accel, request.topology))
        checks = [*checks, *schecks]
        sfailed = [c for c in schecks if not c.passed]
        if sfailed and verdict is Verdict.PASS:
            verdict = Verdict.FAIL
        reasons.extend(f"{c.name} failed: {c.detail}" for c in sfailed)
    if verdict is Verdict.PASS and stats.get("workload_status", 0) not in (0, None):
        verdict = Verdict.FAIL
        reasons.append(f"workload {request.workload.value} exited with status "
                       f"{stats['workload_status']}")
    if verdict is Verdict.PASS and outcome.done is None:
        verdict = Verdict.ERROR
        reasons.append("the guest never reported the end of the run")
    if outcome.emulator_fault and verdict is not Verdict.PASS:
        reasons.insert(0, "retried after an emulator fault (Oops: int3 under multi-threaded "
                          "TCG) with thread=single")
    return RunResult(
        verdict=verdict, reasons=reasons, notes=notes, boot=outcome.boot,
        sched_outcome=judgement.outcome,
        sched_ops=judgement.ops, vm_outcome=outcome.vm_outcome, accel=accel.describe(),
        topology_seen=outcome.seen.summary if outcome.seen else "", topology_diff=diff,
        timeline=timeline(outcome.events),
        timings=run_timings(request, outcome, judgement, total_s),
        sched_log=sched_log[-20000:],
        kernel_sched_ext_log=dmesg[-8000:], ejection_reason=judgement.ejection_reason,
        debug_dump=judgement.debug_dump, panic_text=outcome.panic_text,
        console_tail=outcome.console_tail, console_path=outcome.console_path, stats=stats,
        checks=checks,
        **base,
    )


def payload_results(request: RunRequest, outcome: BootOutcome) -> tuple[list[CheckOutcome],
                                                                        dict[str, object]]:
    """Metrics and check outcomes of the run's payload."""
    p = request.payload
    assert p is not None
    exit_code: int | None = None
    for e in outcome.events:
        if e.name == "payload_exit":
            exit_code = int(e.fields.get("status", "-1"))
    stdout = outcome.blobs.get("payload_stdout", "")
    metrics = parse_metrics(p.output, stdout, outcome.blobs)
    checks = evaluate(with_exit_check(p.checks_with(request.payload_checks)), metrics,
                      exit_code)
    if exit_code is None:
        checks.append(CheckOutcome(name="payload: ran", passed=False,
                                   detail="the payload never reported its exit"))
    if any(not c.passed for c in checks) and exit_code == 127:
        checks.append(CheckOutcome(
            name="payload: found", passed=False,
            detail=f"exit 127 (command not found): {payload_argv(request)}: "
                   + (outcome.blobs.get("payload_stderr", "").strip()[-300:] or "no stderr")))
    return checks, {
        "name": p.name, "exit_code": exit_code, "metrics": metrics,
        "hints": {m.name: {"unit": m.unit, "polarity": m.polarity.value} for m in p.metrics},
        "stdout_tail": "\n".join(stdout.splitlines()[-TAIL_LINES:]),
        "stderr_tail": "\n".join(outcome.blobs.get("payload_stderr", "")
                                 .splitlines()[-TAIL_LINES:]),
        "stdout_bytes": len(stdout.encode()),
        "stderr_bytes": len(outcome.blobs.get("payload_stderr", "").encode()),
    }


def run_defs(
    request: RunRequest,
    defs_or_steps: Scenario | Sequence[CgroupDef] | Sequence[Step],
    *,
    checks: Assert | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run ``defs_or_steps`` under ``request``'s scheduler, kernel and topology.

    ``checks`` overrides thresholds for this run (on top of the scheduler's own).
    """
    req = request.model_copy(update=scenario_runner.request_fields(defs_or_steps, checks=checks))
    return run_scheduler(req, progress) if progress else run_scheduler(req)
