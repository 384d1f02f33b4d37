"""The result of one run: a verdict with its reasons, the evidence and the timings."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.results.trace import ExitSite, StalledTask, TraceWindow
from ktstr.vm.outcome import VmOutcome

__all__ = ["VmOutcome"]  # defined by the VM layer; reported here


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
    #: how long the workload ran (guest clock)
    run_s: float | None = None
    #: how long the scheduler stayed attached: attach to its exit, ejection or stop
    sched_run_s: float | None = None
    teardown_s: float | None = None
    total_s: float | None = None


class KernelFacts(Frozen):
    spec: str = ""
    version: str = ""
    release: str = ""
    sched_ext: bool | None = None
    config: dict[str, str] = Field(default_factory=dict)
    image: str = ""


class FailureClass(enum.StrEnum):
    """What kind of FAIL a run is: a repro reproduces a failure when its class is the
    same (``ktstr.run.repro``)."""

    DIED = "died"  # the scheduler exited
    EJECTED = "ejected"  # the kernel disabled it (an error, anything but a stall)
    STALLED = "stalled"  # the kernel's watchdog: runnable task stall
    NOT_ATTACHED = "not_attached"
    UNCLEAN_STOP = "unclean_stop"
    CRASHED = "crashed"  # kernel panic
    CHECK_FAILED = "check_failed"  # the scheduler stayed; a check or the workload failed


class TraceSummary(Frozen):
    """A run's scheduling trace (a repro run's): where its files are and what it shows."""

    text_path: str = Field(description="raw tracefs text (trace.txt)")
    json_path: str = Field(description="Chrome trace-event JSON (trace.json)")
    enabled: list[str] = Field(default_factory=list, description="events recorded")
    missing: list[str] = Field(default_factory=list,
                               description="events asked for that this kernel lacks")
    clock: str = ""
    buffer_kb: int | None = None
    #: bytes of trace text in the guest, and how many came back (the tail, capped)
    bytes_total: int | None = None
    bytes_sent: int | None = None
    events: int = 0
    lost: dict[int, int] = Field(default_factory=dict)
    failure_t: float | None = None
    failure_cpu: int | None = None
    failure_source: str = ""
    #: the task and CPU the kernel names for the exit (the debug dump's head)
    exit_site: ExitSite | None = None
    stalled: StalledTask | None = None
    #: since when the stalled task was runnable without running, per the trace
    stalled_since: float | None = None
    window: TraceWindow | None = None

    @property
    def truncated(self) -> bool:
        return (self.bytes_total or 0) > (self.bytes_sent or 0)


class ReproStatus(enum.StrEnum):
    REPRODUCED = "reproduced"  # the rerun failed the same way (same FailureClass)
    FLAKY = "flaky"  # the rerun passed, or failed another way
    NO_VERDICT = "no_verdict"  # the rerun could not judge (ERROR, SKIP)


class Repro(Frozen):
    """The traced rerun of a failed cell."""

    status: ReproStatus
    first_class: FailureClass
    repro_verdict: Verdict
    repro_class: FailureClass | None = None
    reasons: list[str] = Field(default_factory=list, description="the rerun's reasons")
    ejection_reason: str | None = None
    run_dir: str = ""
    trace: TraceSummary | None = None


class RunResult(Frozen):
    """Everything one run produced. ``verdict`` is what a test asserts on."""

    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    #: what a reader should know that did not decide the verdict (a retry, an allowed exit)
    notes: list[str] = Field(default_factory=list)
    #: how the VM started: "restored (snapshot KEY, ...)" or "cold (why)"
    boot: str = ""
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
    #: this run's scheduling trace, when it was traced (a repro run is)
    trace: TraceSummary | None = None
    #: the traced rerun of this failed run (``--no-repro``: none)
    repro: Repro | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def flaky(self) -> bool:
        """Failed once, but the traced rerun did not fail the same way."""
        return self.repro is not None and self.repro.status is ReproStatus.FLAKY

    def summary_line(self) -> str:
        head = f"{self.verdict.value.upper()}{' (flaky)' if self.flaky else ''} "
        head += f"{self.scheduler} on {self.kernel.version or '?'} "
        head += f"{self.topology_requested}"
        if self.reasons:
            head += ": " + "; ".join(self.reasons)
        return head
