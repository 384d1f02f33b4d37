"""Pure: what the guest agent is told to do (``ktstr.guest.protocol.RunPlan``), and the
few per-run files that still travel in the image's run segment (a test's inline
config)."""

from __future__ import annotations

from collections.abc import Sequence

from ktstr.declare.scheduler import Scheduler
from ktstr.declare.settings import Sysctl
from ktstr.declare.spec import KernelBuiltinSpec, SpecKind
from ktstr.guest.protocol import (
    Mode,
    RunPlan,
    ScenarioWire,
    SchedKind,
    SchedulerPlan,
    SetupPlan,
    SysctlWrite,
    TracePlan,
    VerifyPlan,
    WorkloadKind,
    WorkloadPlan,
)

SCHED_GUEST_DIR = "/sched"


def sched_kind(scheduler: Scheduler) -> SchedKind:
    return {
        SpecKind.EEVDF: SchedKind.NONE,
        SpecKind.KERNEL_BUILTIN: SchedKind.BUILTIN,
        SpecKind.DISCOVER: SchedKind.BINARY,
        SpecKind.PATH: SchedKind.BINARY,
    }[scheduler.binary.kind]


def sched_guest_path(scheduler: Scheduler) -> str | None:
    name = scheduler.binary.binary_name
    return f"{SCHED_GUEST_DIR}/{name}" if name else None


def sysctl_writes(sysctls: Sequence[Sysctl]) -> list[SysctlWrite]:
    """In order (the last write wins), each with its ``/proc/sys`` path."""
    return [SysctlWrite(key=s.key, path=s.proc_path, value=s.value) for s in sysctls]


def setup_plan(scheduler: Scheduler, expected: Sequence[str] = ()) -> SetupPlan:
    """The scheduler's setup, the same for every path that starts it (run, test,
    gauntlet, verifier, service cell): sysctls, cgroup parent, packed files."""
    return SetupPlan(
        sysctls=sysctl_writes(scheduler.sysctls),
        cgroup_parent=scheduler.cgroup_parent.path if scheduler.cgroup_parent else "",
        expect_files=list(expected),
    )


def scheduler_plan(
    scheduler: Scheduler,
    sched_args: Sequence[str],
    *,
    attach_timeout_s: float,
    stop_timeout_s: float,
    require_alive: bool = True,
) -> SchedulerPlan:
    """How the agent starts, proves, watches and stops the scheduler (bounds already
    scaled for the accelerator, ``AccelChoice.bound``)."""
    spec = scheduler.binary
    builtin = spec if isinstance(spec, KernelBuiltinSpec) else None
    return SchedulerPlan(
        kind=sched_kind(scheduler), path=sched_guest_path(scheduler) or "",
        args=list(sched_args),
        enable=list(builtin.enable) if builtin else [],
        disable=list(builtin.disable) if builtin else [],
        attach_timeout_s=max(1.0, round(attach_timeout_s)),
        stop_timeout_s=max(1.0, round(stop_timeout_s)),
        require_alive=require_alive,
    )


def scheduler_segment(scheduler: Scheduler, *, inline_config: str | None = None
                      ) -> dict[str, bytes]:
    """Per-run files of the scheduler: the test's inline config at
    ``config_file_def.guest_path``."""
    if inline_config is not None and scheduler.config_file_def is not None:
        return {scheduler.config_file_def.guest_path: inline_config.encode()}
    return {}


def run_plan(
    *,
    scheduler: Scheduler,
    sched_args: Sequence[str],
    workload: str,
    workers: int,
    duration_s: float,
    attach_timeout_s: float,
    stop_timeout_s: float,
    payload_argv: Sequence[str] | None = None,
    payload_timeout_s: float = 0,
    payload_own_pgrp: bool = True,
    require_alive: bool = True,
    scenario: ScenarioWire | None = None,
    expected: Sequence[str] = (),
    trace: TracePlan | None = None,
) -> RunPlan:
    """The plan of a scheduler test (mode ``run``)."""
    return RunPlan(
        mode=Mode.RUN, harness_rt=True,
        setup=setup_plan(scheduler, expected),
        scheduler=scheduler_plan(scheduler, sched_args, attach_timeout_s=attach_timeout_s,
                                 stop_timeout_s=stop_timeout_s, require_alive=require_alive),
        workload=WorkloadPlan(
            kind=WorkloadKind(workload), workers=workers, duration_s=max(1.0, duration_s),
            argv=list(payload_argv or ()), timeout_s=max(1.0, round(payload_timeout_s)),
            own_pgrp=payload_own_pgrp),
        scenario=scenario, trace=trace,
    )


def verify_plan(
    *,
    scheduler: Scheduler,
    attach_timeout_s: float,
    stop_timeout_s: float,
    bpf_object: str,
    log_cap: int,
    expected: Sequence[str] = (),
) -> RunPlan:
    """A verifier cell (mode ``verify``): the run's setup and attach proof, plus
    veristat on the scheduler's object."""
    return RunPlan(
        mode=Mode.VERIFY, harness_rt=True,
        setup=setup_plan(scheduler, expected),
        scheduler=scheduler_plan(scheduler, scheduler.merged_args(),
                                 attach_timeout_s=attach_timeout_s,
                                 stop_timeout_s=stop_timeout_s),
        verify=VerifyPlan(object=bpf_object, log_cap=log_cap),
    )


def exec_plan(command: str) -> RunPlan:
    """``ktstr shell --exec``."""
    return RunPlan(mode=Mode.EXEC, command=command)


def shell_plan() -> RunPlan:
    return RunPlan(mode=Mode.SHELL)
