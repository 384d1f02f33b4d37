"""What one run asks for."""

from __future__ import annotations

import enum
import shlex
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from ktstr.declare.base import Frozen
from ktstr.declare.checks import Assert
from ktstr.declare.flags import FlagProfile
from ktstr.declare.payload import MetricCheck, Payload
from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import Topology
from ktstr.guest.protocol import TracePlan
from ktstr.scenario.scenario import Scenario
from ktstr.vm.host import AccelRequest


class Workload(enum.StrEnum):
    SPIN = "spin"  # N busy-looping shell workers
    STRESS_NG = "stress-ng"  # stress-ng --cpu N (Debian stress-ng)
    HACKBENCH = "hackbench"  # hackbench in a loop (Debian rt-tests)
    NONE = "none"
    PAYLOAD = "payload"  # RunRequest.payload, run to completion


WORKLOAD_BINARIES: dict[Workload, tuple[str, ...]] = {
    Workload.STRESS_NG: ("stress-ng",),
    Workload.HACKBENCH: ("hackbench",),
}


class RunRequest(Frozen):
    scheduler: Scheduler
    kernel: str | None = None
    topology: Topology
    duration_s: float = Field(5.0, gt=0, le=3600)
    workload: Workload = Workload.SPIN
    workers: int | None = Field(None, ge=0, le=1024)
    extra_sched_args: tuple[str, ...] = ()
    flag_profile: FlagProfile | None = None
    inline_config: str | None = None
    accel: AccelRequest = AccelRequest.AUTO
    memory_mb: int | None = Field(None, ge=128)
    keep: bool = False
    #: boot the VM instead of restoring a snapshot, and save none (``--cold-boot``)
    cold_boot: bool = False
    #: host CPUs all VMs may hold at once (``--ktstr-cpu-budget``); None:
    #: ``$KTSTR_CPU_BUDGET``, else the host's CPUs (``ktstr.vm.budget``)
    cpu_budget: int | None = Field(None, ge=1)
    attach_timeout_s: float = Field(10.0, gt=0)
    stop_timeout_s: float = Field(5.0, gt=0)
    run_dir: Path | None = None
    include_files: tuple[Path, ...] = ()
    payload: Payload | None = None
    payload_args: tuple[str, ...] = ()
    payload_checks: tuple[MetricCheck, ...] = ()
    declaration_modules: tuple[str, ...] = ()
    #: cgroups and workers instead of the default workload (ktstr.scenario)
    scenario: Scenario | None = None
    #: this run's check thresholds, over the scheduler's (Assert.chain)
    checks: Assert | None = None
    #: unscaled bound on the guest's whole run after boot (default: attach bound +
    #: duration + stop bounds + slack); scaled for the accelerator like every bound
    watchdog_timeout_s: float | None = Field(None, gt=0)
    #: on FAIL, rerun the cell once with a scheduling trace (``ktstr.run.repro``);
    #: ``--no-repro`` turns it off
    repro: bool = True
    #: a scheduling trace of this run (a repro run has one)
    trace: TracePlan | None = None
    #: a declared one-shot fault: scheduler arguments for this run only, never for its
    #: repro (e.g. scx_qmap's ``-e 100``), so a failure that does not recur can be tested
    one_shot_sched_args: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _payload_flags_known(self) -> Self:
        if self.payload is not None:
            self.payload.args_with(self.payload_args)  # UserError naming an unknown flag
        return self

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else self.topology.total_cpus

    @property
    def effective_workload(self) -> Workload:
        return Workload.PAYLOAD if self.payload is not None else self.workload

    @property
    def sched_args(self) -> list[str]:
        return [*self.scheduler.merged_args(
            self.extra_sched_args,
            self.flag_profile.args if self.flag_profile else (),
            inline_config=self.inline_config is not None,
        ), *self.one_shot_sched_args]

    def reproducer(self, kernel_label: str | None = None) -> str:
        """A ``ktstr run`` command that runs the same cell again (``ktstr run --list`` on
        it prints ``cell()`` of this request)."""
        argv = ["ktstr"]
        for mod in self.declaration_modules:
            argv += ["-d", mod]
        t = self.topology
        argv += [
            "run",
            "--kernel", kernel_label or self.kernel or "<kernel>",
            "--scheduler", self.scheduler.name,
            "--topology", f"{t.numa_nodes},{t.llcs},{t.cores_per_llc},{t.threads_per_core}",
            "--duration", f"{self.duration_s:g}",
        ]
        if self.effective_workload is not Workload.PAYLOAD and self.scenario is None \
                and self.workload is not Workload.SPIN:
            argv += ["--workload", self.workload.value]
        if self.workers is not None and self.scenario is None and self.payload is None:
            argv += ["--workers", str(self.workers)]
        if self.flag_profile is not None:
            argv += ["--flags", self.flag_profile.name]
        for a in self.extra_sched_args:
            argv += [f"--extra-sched-arg={a}"]
        for a in self.one_shot_sched_args:
            argv += [f"--one-shot-sched-arg={a}"]
        if self.scenario is not None:
            argv += ["--scenario", self.scenario.name]
        if self.payload is not None:
            argv += ["--payload", self.payload.name]
            argv += [f"--payload-arg={a}" for a in self.payload_args]
        for inc in self.include_files:
            argv += ["--include", str(inc)]
        if self.accel is not AccelRequest.AUTO:
            argv += ["--accel", self.accel.value]
        notes = []
        if self.scenario is not None and not self.scenario.canned:
            notes.append(f"scenario {self.scenario.name!r} is declared in code: --scenario "
                         "takes canned names only")
        if self.inline_config is not None:
            notes.append("the test's inline config is not on the command line")
        if self.payload_checks or self.checks is not None:
            notes.append("the test's own checks are not on the command line")
        return shlex.join(argv) + (f"  # {'; '.join(notes)}" if notes else "")

    def cell(self, kernel_label: str | None = None) -> dict[str, object]:
        """What identifies this run: the fields a reproducer must bring back."""
        return {
            "kernel": kernel_label or self.kernel,
            "scheduler": self.scheduler.name,
            "topology": self.topology.label,
            "duration_s": self.duration_s,
            "workload": (f"payload {self.payload.name}" if self.payload is not None
                         else f"scenario {self.scenario.name}" if self.scenario is not None
                         else self.workload.value),
            "workers": (None if self.payload is not None or self.scenario is not None
                        else self.worker_count),
            "flag_profile": self.flag_profile.name if self.flag_profile else None,
            "sched_args": self.sched_args,
            "payload_args": list(self.payload.args_with(self.payload_args))
            if self.payload is not None else [],
            "include_files": [str(p) for p in self.include_files],
            "accel": self.accel.value,
        }
