"""The host <-> guest contract: one JSON object per line on the ``ktstr.results``
virtio-serial port, both directions.

Host -> guest: one ``RunPlan`` after the agent's ``Hello``. Guest -> host: the
``GuestMessage`` union, discriminated by ``t``. The guest side is ``ktstr-agent``
(``ktstr/guest/native/agent.c``), which builds and escapes its JSON with jansson; a test
runs the real agent and validates every message it sends against these models.

Text fields carry any bytes: valid UTF-8 travels as a JSON string, anything else as
``{"b64": ...}``; both decode to ``str``, invalid bytes as surrogate escapes, so
``text.encode("utf-8", "surrogateescape")`` gives back the guest's bytes exactly.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError

from ktstr.declare.base import Frozen


def _text(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            raw = base64.b64decode(str(value["b64"]).encode("ascii"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"bad base64 text: {exc}") from exc
        return raw.decode("utf-8", errors="surrogateescape")
    return value


#: a guest string: JSON text, or ``{"b64": ...}`` for bytes that are not UTF-8
Text = Annotated[str, BeforeValidator(_text)]


# -- host -> guest ------------------------------------------------------------------------

class Mode(enum.StrEnum):
    EXEC = "exec"  # run a shell command, send its status and output (ktstr shell --exec)
    SHELL = "shell"  # hand the console to an interactive shell (ktstr shell)
    RUN = "run"  # a scheduler test: setup, scheduler, workload or scenario, stop, report
    VERIFY = "verify"  # a verifier cell: veristat, setup, load the scheduler, its programs


class SysctlWrite(Frozen):
    key: str = Field(description="dot form, e.g. kernel.sched_autogroup_enabled")
    path: str = Field(description="/proc/sys/... path written")
    value: str


class SetupPlan(Frozen):
    sysctls: list[SysctlWrite] = Field(default_factory=list)
    cgroup_parent: str = ""
    #: guest paths that must be regular files before the test starts
    expect_files: list[str] = Field(default_factory=list)


class SchedKind(enum.StrEnum):
    NONE = "none"  # EEVDF: nothing to start
    BINARY = "binary"
    BUILTIN = "builtin"  # kernel-builtin: enable/disable shell commands


class SchedulerPlan(Frozen):
    kind: SchedKind = SchedKind.NONE
    path: str = ""
    args: list[str] = Field(default_factory=list)
    enable: list[str] = Field(default_factory=list)
    disable: list[str] = Field(default_factory=list)
    attach_timeout_s: float = 10.0
    stop_timeout_s: float = 5.0
    #: False: the run goes on when the scheduler exits or is ejected
    require_alive: bool = True


class WorkloadKind(enum.StrEnum):
    SPIN = "spin"
    STRESS_NG = "stress-ng"
    HACKBENCH = "hackbench"
    PAYLOAD = "payload"
    NONE = "none"


class WorkloadPlan(Frozen):
    kind: WorkloadKind = WorkloadKind.NONE
    workers: int = 0
    duration_s: float = 0.0
    #: payload: the command line, run to its end within ``timeout_s``
    argv: list[str] = Field(default_factory=list)
    timeout_s: float = 0.0
    #: payload: its own process group, reaped whole (else the harness's group)
    own_pgrp: bool = True


class ScenarioStepPlan(Frozen):
    describe: str
    hold_cs: int = Field(ge=1, description="the step's hold, centiseconds")
    loop_cs: int = Field(0, ge=0, description="repeat the ops every N cs within the hold")
    #: each op an argv-like list: ["scn_cg_add", KEY, NAME, CPUS], ... (ktstr.scenario.plan)
    ops: list[list[str]] = Field(default_factory=list)


class ScenarioWire(Frozen):
    root: str
    ready_s: float
    stop_s: float
    steps: list[ScenarioStepPlan]


class VerifyPlan(Frozen):
    object: str = Field("", description="guest path of the scheduler's .bpf.o ('' if none)")
    log_cap: int = Field(4 << 20, ge=0, description="bytes of veristat -v kept on failure")


class TracePlan(Frozen):
    """A scheduling trace through tracefs (a repro run's, ``ktstr.run.repro``).

    The agent enables the events of ``events`` that this kernel has (``SYS/EVENT``, or
    ``SYS/*`` for all of a system's), reports which it enabled and which it did not
    find (event ``trace_started``), stops recording the moment the scheduler exits or
    is ejected, and sends the trace text as the blob ``trace``, its last ``cap_bytes``.
    """

    events: list[str] = Field(min_length=1)
    buffer_kb: int = Field(ge=64, le=1 << 20, description="per-CPU ring buffer, KiB")
    cap_bytes: int = Field(ge=4096, description="most bytes of trace text sent back")


class RunPlan(Frozen):
    """What the guest is to do in this boot."""

    t: Literal["plan"] = "plan"
    mode: Mode
    report_topology: bool = True
    #: run the agent SCHED_FIFO 1 (outside sched_ext); what is tested runs SCHED_OTHER
    harness_rt: bool = False
    command: str | None = None
    setup: SetupPlan = Field(default_factory=SetupPlan)
    scheduler: SchedulerPlan = Field(default_factory=SchedulerPlan)
    workload: WorkloadPlan = Field(default_factory=WorkloadPlan)
    scenario: ScenarioWire | None = None
    verify: VerifyPlan | None = None
    #: the host's wall clock when the plan was sent (a restored guest's clock is the
    #: snapshot's); the agent sets CLOCK_REALTIME from it
    clock_unix_ns: int | None = None
    #: fresh host random bytes the agent mixes into /dev/urandom (two guests restored
    #: from one snapshot would otherwise share their RNG state; vmgenid reseeds too)
    entropy_hex: str = ""
    trace: TracePlan | None = None

    def line(self) -> str:
        return self.model_dump_json() + "\n"


class FilesHeader(Frozen):
    """Host -> guest before the plan: the next ``size`` raw bytes on the channel are an
    uncompressed cpio (newc) archive of the run's files, unpacked over ``/``."""

    t: Literal["files"] = "files"
    size: int = Field(ge=0)

    def line(self) -> str:
        return self.model_dump_json() + "\n"


# -- guest -> host ------------------------------------------------------------------------

class EventName(enum.StrEnum):
    """Every event the agent sends (ktstr/guest/native/*.c)."""

    HARNESS_RT = "harness_rt"
    FILES_RECEIVED = "files_received"
    SETUP_FAILED = "setup_failed"
    SYSCTL = "sysctl"
    CGROUP_PARENT = "cgroup_parent"
    SCHED_NONE = "sched_none"
    SCHED_ENABLE_CMDS = "sched_enable_cmds"
    SCHED_STARTED = "sched_started"
    SCHED_ATTACHED = "sched_attached"
    SCHED_EXITED = "sched_exited"
    SCHED_NOT_ATTACHED = "sched_not_attached"
    SCHED_DETACHED = "sched_detached"
    SCHED_KILL_NEEDED = "sched_kill_needed"
    SCHED_STOPPED = "sched_stopped"
    WORKLOAD_STARTED = "workload_started"
    WORKLOAD_STOPPED = "workload_stopped"
    PAYLOAD_TIMEOUT = "payload_timeout"
    PAYLOAD_EXIT = "payload_exit"
    SCENARIO_BEGIN = "scenario_begin"
    SCENARIO_END = "scenario_end"
    SCN_STEP = "scn_step"
    SCN_OP_FAILED = "scn_op_failed"
    SCN_CGROUP_ADDED = "scn_cgroup_added"
    SCN_CGROUP_REMOVED = "scn_cgroup_removed"
    SCN_CPUSET = "scn_cpuset"
    SCN_SPAWNED = "scn_spawned"
    SCN_STOPPED = "scn_stopped"
    SCN_KILL_NEEDED = "scn_kill_needed"
    SCN_AFFINITY = "scn_affinity"
    SCN_MOVED = "scn_moved"
    SCN_PAYLOAD_STARTED = "scn_payload_started"
    SCN_PAYLOAD_EXIT = "scn_payload_exit"
    TRACE_STARTED = "trace_started"
    TRACE_UNAVAILABLE = "trace_unavailable"
    TRACE_FROZEN = "trace_frozen"
    TRACE_READ = "trace_read"


class Hello(Frozen):
    """The agent is up and ready for the plan."""

    t: Literal["hello"]
    uptime_s: float
    release: str = ""
    #: forks since boot (/proc/stat processes)
    processes: int | None = None


class TopologyReport(Frozen):
    """Raw sysfs facts as text lines (parsed on the host, see ``guest.topology``)."""

    t: Literal["topology"]
    text: Text


class ExecResult(Frozen):
    t: Literal["exec"]
    status: int
    stdout: Text = ""
    stderr: Text = ""


class VerifyResult(Frozen):
    """A verifier cell's sections (``ktstr.sweep.guestout``)."""

    t: Literal["verify"]
    status: int
    sections: dict[str, Text] = Field(default_factory=dict)


class Log(Frozen):
    t: Literal["log"]
    msg: Text


class Blob(Frozen):
    """A named piece of text (a log, a state dump) from the guest."""

    t: Literal["blob"]
    name: str
    text: Text


class Event(Frozen):
    """A timestamped event with string fields (scheduler lifecycle, phases)."""

    t: Literal["event"]
    name: EventName
    uptime_s: float = 0.0
    fields: dict[str, Text] = Field(default_factory=dict)


class Done(Frozen):
    """The agent finished its work; the guest powers off."""

    t: Literal["done"]
    status: int = 0
    uptime_s: float = 0.0
    processes: int | None = None


GuestMessage = Annotated[
    Hello | TopologyReport | ExecResult | VerifyResult | Log | Blob | Event | Done,
    Field(discriminator="t"),
]
_ADAPTER: TypeAdapter[GuestMessage] = TypeAdapter(GuestMessage)


class BadMessage(Frozen):
    """A line that was not a valid message (kept for the report, never dropped)."""

    t: Literal["bad"] = "bad"
    line: str
    error: str


def parse_message(line: str) -> GuestMessage | BadMessage:
    """Parse one line from the port."""
    text = line.strip()
    try:
        return _ADAPTER.validate_python(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        return BadMessage(line=text[:500], error=str(exc).splitlines()[0])
