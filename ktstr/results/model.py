"""The result of one run: a verdict with its reasons, the evidence and the timings."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import Field

from ktstr.declare.base import Frozen


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "error": 3, "skip": 4}[self.value]


class SchedOutcome(enum.StrEnum):
    """What happened to the scheduler (apart from the test's verdict)."""

    NONE = "none"  # EEVDF: nothing to attach
    ATTACHED = "attached"  # attached and stayed until stopped cleanly
    NOT_ATTACHED = "not_attached"  # alive but never enabled within the bound
    DIED = "died"  # exited during start or run
    EJECTED = "ejected"  # the kernel disabled it (error, stall)
    UNCLEAN_STOP = "unclean_stop"  # needed SIGKILL or state stayed enabled after stop
    UNKNOWN = "unknown"


class VmOutcome(enum.StrEnum):
    OK = "ok"
    CRASHED = "crashed"  # kernel panic
    TIMEOUT = "timeout"  # the guest did not answer in time
    EMULATOR_FAULT = "emulator_fault"  # TCG static-key Oops: infrastructure, retried
    EXITED = "exited"  # QEMU exited early
    LAUNCH_FAILED = "launch_failed"


class CheckOutcome(Frozen):
    name: str
    passed: bool
    detail: str = ""
    value: float | None = None
    threshold: float | None = None


class TimelineEntry(Frozen):
    t: float = Field(description="guest uptime in seconds")
    name: str
    fields: dict[str, str] = Field(default_factory=dict)


class Timings(Frozen):
    boot_s: float | None = None
    attach_s: float | None = None
    run_s: float | None = None
    teardown_s: float | None = None
    total_s: float | None = None


class KernelFacts(Frozen):
    spec: str = ""
    version: str = ""
    release: str = ""
    sched_ext: bool | None = None
    config: dict[str, str] = Field(default_factory=dict)
    image: str = ""


class RunResult(Frozen):
    """Everything one run produced. ``verdict`` is what a test asserts on."""

    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    scheduler: str
    sched_outcome: SchedOutcome = SchedOutcome.UNKNOWN
    sched_ops: str | None = None
    sched_args: list[str] = Field(default_factory=list)
    vm_outcome: VmOutcome = VmOutcome.OK
    accel: str = ""
    kernel: KernelFacts = Field(default_factory=KernelFacts)
    topology_requested: str = ""
    topology_seen: str = ""
    topology_diff: list[str] = Field(default_factory=list)
    workload: str = ""
    duration_s: float = 0.0
    checks: list[CheckOutcome] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    timings: Timings = Field(default_factory=Timings)
    sched_log: str = ""
    kernel_sched_ext_log: str = ""
    ejection_reason: str | None = None
    debug_dump: str = ""
    panic_text: str = ""
    console_tail: str = ""
    console_path: str = ""
    run_dir: str = ""
    reproducer: str = ""
    stats: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def summary_line(self) -> str:
        head = f"{self.verdict.value.upper()} {self.scheduler} on {self.kernel.version or '?'} "
        head += f"{self.topology_requested}"
        if self.reasons:
            head += ": " + "; ".join(self.reasons)
        return head
