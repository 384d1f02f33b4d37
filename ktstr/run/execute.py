"""``run_scheduler``: one scheduler test from request to verdict."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ktstr.errors import UserError
from ktstr.kernel.cache import CachedKernel
from ktstr.kernel.resolve import resolve_kernel
from ktstr.results.judge import judge_scheduler, timeline
from ktstr.results.metrics import evaluate, parse_metrics
from ktstr.results.model import (
    CheckOutcome,
    KernelFacts,
    RunResult,
    SchedOutcome,
    Timings,
    Verdict,
    VmOutcome,
)
from ktstr.run.boot import BootOutcome, boot
from ktstr.run.image import base_spec, make_initrd
from ktstr.run.params import run_files
from ktstr.run.probe import select_accel
from ktstr.run.request import WORKLOAD_BINARIES, RunRequest
from ktstr.run.rundir import finish_run_dir, make_run_dir
from ktstr.run.stats import workload_stats
from ktstr.scenario import runner as scenario_runner
from ktstr.vm.argv import TcgThreading, kernel_cmdline
from ktstr.vm.host import AccelChoice, timeout_scale

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
    if not spec.has_binary:
        return None
    if spec.path_ is not None:
        path = Path(spec.path_)
        if not path.is_file():
            raise UserError(f"scheduler {request.scheduler.name!r}: binary {spec.path_} "
                            "does not exist")
        return path
    from ktstr.schedbin import discover_scheduler

    assert spec.name is not None
    return discover_scheduler(spec.name, kernel.release or kernel.version)


def payload_argv(request: RunRequest) -> list[str] | None:
    """The payload's guest command line: its executable, default args, the test's args."""
    p = request.payload
    if p is None:
        return None
    exe = p.executable or p.name
    guest = exe if exe.startswith("/") else f"/usr/bin/{exe.rsplit('/', 1)[-1]}"
    return [guest, *p.args_with(request.payload_args)]


def run_scheduler(request: RunRequest, progress: Progress = _noop) -> RunResult:
    """Boot, start the scheduler, prove it attached, run the workload, judge."""
    t0 = time.monotonic()
    sched = request.scheduler
    progress(f"resolving kernel {request.kernel or '(default)'}")
    kernel = resolve_kernel(request.kernel)
    facts = kernel_facts(kernel, request.kernel)
    label = kernel.version
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
    scenario_files = scenario_runner.segment_files(request)  # validates the scenario
    spec = base_spec(scheduler=sched, scheduler_binary=binary,
                     tools=(*WORKLOAD_BINARIES.get(request.workload, ()),
                            *(request.scenario.executables() if request.scenario else ())),
                     include_files=request.include_files, payload=request.payload,
                     extra_binaries=scenario_runner.image_binaries(request))
    files = run_files(
        mode="run", scheduler=sched, sched_args=request.sched_args,
        workload=request.effective_workload.value, workers=request.worker_count,
        duration_s=request.duration_s, attach_timeout_s=request.attach_timeout_s,
        stop_timeout_s=request.stop_timeout_s, inline_config=request.inline_config,
        payload_argv=payload_argv(request), payload_timeout_s=request.duration_s + 60,
        scenario_files=scenario_files,
    )
    progress("building initramfs")
    initrd = make_initrd(spec, files, run_dir)
    work_s = request.attach_timeout_s + request.duration_s + 2 * request.stop_timeout_s + 30
    if request.payload is not None:
        work_s += 60
    if request.scenario is not None:  # worker start/stop and payload waits
        work_s += 60
    cmdline = kernel_cmdline(user_kargs=sched.kargs)
    progress(f"booting {kernel.release or kernel.version} with {request.topology.label} "
             f"({request.topology.total_cpus} vCPUs)")
    outcome = boot(kernel=kernel.image_path, initrd=initrd, cmdline=cmdline,
                   topology=request.topology, accel=accel, run_dir=run_dir,
                   work_timeout_s=work_s, memory_mb=request.memory_mb, name=sched.name)
    if outcome.vm_outcome is VmOutcome.EMULATOR_FAULT and accel.tcg_threading is \
            TcgThreading.MULTI and accel.accel.value == "tcg":
        progress("emulator fault (Oops: int3 under multi-threaded TCG): retrying with "
                 "thread=single")
        accel = accel.model_copy(update={"tcg_threading": TcgThreading.SINGLE,
                                         "reason": accel.reason + "; retried single-threaded"})
        outcome = boot(kernel=kernel.image_path, initrd=initrd, cmdline=cmdline,
                       topology=request.topology, accel=accel, run_dir=run_dir,
                       work_timeout_s=work_s, memory_mb=request.memory_mb, name=sched.name)
    result = judge_run(request, outcome, base, accel, time.monotonic() - t0)
    kept = finish_run_dir(run_dir, keep=request.keep or not result.passed)
    if kept:
        result = result.model_copy(update={"run_dir": str(run_dir)})
    else:
        result = result.model_copy(update={"console_path": ""})
    return result


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
    sched_log = outcome.blobs.get("sched_log", "")
    dmesg = outcome.blobs.get("dmesg_sched_ext", "")
    judgement = judge_scheduler(outcome.events, has_active_scheduling=sched.binary
                                .has_active_scheduling, sched_log=sched_log, dmesg=dmesg)
    reasons: list[str] = []
    verdict = Verdict.PASS
    diff = topology_diff(request.topology, outcome.seen) if outcome.seen else []
    if outcome.vm_outcome is VmOutcome.CRASHED:
        verdict = Verdict.FAIL
        reasons.append(f"crashed: kernel panic: {outcome.detail}")
    elif outcome.vm_outcome is not VmOutcome.OK:
        verdict = Verdict.ERROR
        reasons.append(f"{outcome.vm_outcome.value}: {outcome.detail}")
    if judgement.reasons and verdict is not Verdict.ERROR:
        verdict = Verdict.FAIL
    reasons.extend(judgement.reasons)
    if diff and verdict is Verdict.PASS:
        verdict = Verdict.ERROR
        reasons.append("topology mismatch: " + "; ".join(diff[:5]))
    stats = workload_stats(outcome.events, outcome.blobs)
    checks: list[CheckOutcome] = []
    if request.payload is not None:
        checks, pstats = payload_results(request, outcome)
        stats["payload"] = pstats
        failed = [c for c in checks if not c.passed]
        if failed and verdict is Verdict.PASS:
            verdict = Verdict.FAIL
        reasons.extend(f"{c.name} failed: {c.detail}" for c in failed)
    if request.scenario is not None:
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
    tl = timeline(outcome.events)
    attach_s = (judgement.attach_t - judgement.start_t
                if judgement.attach_t is not None and judgement.start_t is not None else None)
    timings = Timings(boot_s=outcome.boot_s, attach_s=attach_s,
                      run_s=request.duration_s if judgement.attach_t or not sched.binary
                      .has_active_scheduling else None, total_s=total_s)
    return RunResult(
        verdict=verdict, reasons=reasons, sched_outcome=judgement.outcome,
        sched_ops=judgement.ops, vm_outcome=outcome.vm_outcome, accel=accel.describe(),
        topology_seen=outcome.seen.summary if outcome.seen else "", topology_diff=diff,
        timeline=tl, timings=timings, sched_log=sched_log[-20000:],
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
    checks = evaluate(p.checks_with(request.payload_checks), metrics, exit_code)
    if exit_code is None:
        checks.append(CheckOutcome(name="payload: ran", passed=False,
                                   detail="the payload never reported its exit"))
    return checks, {
        "name": p.name, "exit_code": exit_code, "metrics": metrics,
        "stdout_tail": "\n".join(stdout.splitlines()[-30:]),
        "stderr_tail": "\n".join(outcome.blobs.get("payload_stderr", "").splitlines()[-30:]),
    }
