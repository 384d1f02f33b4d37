"""What one run asks for."""

from __future__ import annotations

import enum
import shlex
from pathlib import Path

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.checks import Assert
from ktstr.declare.flags import FlagProfile
from ktstr.declare.payload import MetricCheck, Payload
from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import Topology
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

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers is not None else self.topology.total_cpus

    @property
    def effective_workload(self) -> Workload:
        return Workload.PAYLOAD if self.payload is not None else self.workload

    @property
    def sched_args(self) -> list[str]:
        return self.scheduler.merged_args(
            self.extra_sched_args,
            self.flag_profile.args if self.flag_profile else (),
            inline_config=self.inline_config is not None,
        )

    def reproducer(self, kernel_label: str | None = None) -> str:
        """A command that runs the same thing again."""
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
            "--workload", self.workload.value,
        ]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        for a in self.extra_sched_args:
            argv += [f"--extra-sched-arg={a}"]
        if self.scenario is not None:
            argv += ["--scenario", self.scenario.name]
        if self.payload is not None:
            argv += ["--payload", self.payload.name]
            argv += [f"--payload-arg={a}" for a in self.payload_args]
        for inc in self.include_files:
            argv += ["--include", str(inc)]
        if self.accel is not AccelRequest.AUTO:
            argv += ["--accel", self.accel.value]
        if self.scenario is not None and not self.scenario.canned:
            return (shlex.join(argv) + f"  # scenario {self.scenario.name!r} is declared in "
                    "code: --scenario takes canned names only")
        return shlex.join(argv)
