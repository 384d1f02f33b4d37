"""Steps of a scenario: operations applied at once, then a hold.

``Step(ops=[Op.add_cgroup(CgroupDef("cg_2").workers(2))], hold=Hold.frac(0.3))`` adds a
cgroup and lets it run for 30 % of the run's duration. Holds:

- ``Hold.frac(x)`` — ``x`` of the run's duration; ``Hold.fixed(s)`` — ``s`` seconds;
- ``Hold.loop(interval, frac=None)`` — apply the step's ops again every ``interval``
  seconds, for ``frac`` of the duration, or (``frac=None``) until the run ends; an open
  loop must be the last step.

While a step holds, the guest keeps checking that the scheduler is alive (every 100 ms).
"""

from __future__ import annotations

import enum
from abc import abstractmethod
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ktstr.declare.base import Frozen
from ktstr.declare.payload import Payload
from ktstr.declare.union import TaggedUnion, Variant
from ktstr.scenario.cgroup import CgroupDef, SchedPolicy, WorkType
from ktstr.scenario.cpuset import CpusetSpec


class HoldKind(enum.StrEnum):
    FRAC = "frac"
    FIXED = "fixed"
    LOOP = "loop"


class Hold(TaggedUnion):
    """How long a step lasts: ``Hold.frac(x)``, ``Hold.fixed(s)`` or
    ``Hold.loop(interval, frac=None)``."""

    usage = "Hold.frac(x), Hold.fixed(seconds) or Hold.loop(interval, frac=None)"
    misplaced = {"share": "only Hold.loop takes frac"}

    kind: HoldKind

    @classmethod
    def frac(cls, x: float) -> FracHold:
        return FracHold(value=x)

    @classmethod
    def fixed(cls, seconds: float) -> FixedHold:
        return FixedHold(value=seconds)

    @classmethod
    def loop(cls, interval: float, frac: float | None = None) -> LoopHold:
        return LoopHold(value=interval, share=frac)

    @property
    def open_ended(self) -> bool:
        """Whether the step runs until the end of the run (an open loop)."""
        return False

    @abstractmethod
    def seconds(self, duration_s: float) -> float | None:
        """How long the step lasts for a run of ``duration_s``; None: until the end."""

    @abstractmethod
    def describe(self) -> str: ...


class FracHold(Variant, Hold):
    """``Hold.frac(x)``: ``x`` of the run's duration."""

    needs = {"value": "Hold.frac needs a fraction of the duration in (0, 1]"}

    kind: Literal[HoldKind.FRAC] = Field(HoldKind.FRAC, description="this form's tag")
    value: float = Field(gt=0, description="fraction of the run's duration, in (0, 1]")

    @field_validator("value")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if value > 1:
            raise ValueError(f"Hold.frac takes a fraction of the duration in (0, 1], "
                             f"not {value}")
        return value

    def seconds(self, duration_s: float) -> float:
        return self.value * duration_s

    def describe(self) -> str:
        return f"frac({self.value:g})"


class FixedHold(Variant, Hold):
    """``Hold.fixed(s)``: ``s`` seconds."""

    needs = {"value": "Hold.fixed needs a number of seconds"}

    kind: Literal[HoldKind.FIXED] = Field(HoldKind.FIXED, description="this form's tag")
    value: float = Field(gt=0, description="seconds")

    def seconds(self, duration_s: float) -> float:
        return self.value

    def describe(self) -> str:
        return f"fixed({self.value:g})"


class LoopHold(Variant, Hold):
    """``Hold.loop(interval, frac=None)``: apply the step's ops again every ``interval``
    seconds, for ``frac`` of the duration or (None) until the run ends."""

    needs = {"value": "Hold.loop needs an interval in seconds"}

    kind: Literal[HoldKind.LOOP] = Field(HoldKind.LOOP, description="this form's tag")
    value: float = Field(gt=0, description="seconds between applications of the ops")
    share: float | None = Field(None, gt=0, le=1, description="share of the duration; "
                                "None: until the run ends (the step must be the last)")

    @property
    def open_ended(self) -> bool:
        return self.share is None

    def seconds(self, duration_s: float) -> float | None:
        return None if self.share is None else self.share * duration_s

    def describe(self) -> str:
        return f"loop({self.value:g}s" + (f", {self.share:g})" if self.share else ")")


Hold.variants = (FracHold, FixedHold, LoopHold)


# --- operations ----------------------------------------------------------------------
class AddCgroup(Frozen):
    op: Literal["add_cgroup"] = "add_cgroup"
    cgroup: CgroupDef = Field(description="created, then its workers spawned (two-phase)")


class RemoveCgroup(Frozen):
    op: Literal["remove_cgroup"] = "remove_cgroup"
    name: str = Field(description="stops its workers, then removes the cgroup")


class SetCpuset(Frozen):
    op: Literal["set_cpuset"] = "set_cpuset"
    name: str
    cpuset: CpusetSpec


class ClearCpuset(Frozen):
    op: Literal["clear_cpuset"] = "clear_cpuset"
    name: str


class SwapCpusets(Frozen):
    op: Literal["swap_cpusets"] = "swap_cpusets"
    a: str
    b: str


class Spawn(Frozen):
    op: Literal["spawn"] = "spawn"
    name: str = Field(description="an existing cgroup")
    workers: int = Field(ge=1, le=512)
    work_type: WorkType | None = Field(None, description="None: the cgroup's work type")
    sched_policy: SchedPolicy | None = None
    priority: int = Field(0, ge=0, le=99)
    nice: int | None = Field(None, ge=-20, le=19)


class StopCgroup(Frozen):
    op: Literal["stop_cgroup"] = "stop_cgroup"
    name: str = Field(description="stops (SIGTERM) the cgroup's workers; the cgroup stays")


class SetAffinity(Frozen):
    op: Literal["set_affinity"] = "set_affinity"
    name: str
    cpus: CpusetSpec | None = Field(description="None: every CPU")


class MoveAllTasks(Frozen):
    op: Literal["move_all_tasks"] = "move_all_tasks"
    src: str
    dst: str


class RunPayload(Frozen):
    op: Literal["run_payload"] = "run_payload"
    payload: Payload
    args: tuple[str, ...] = ()
    id: str = Field("", description="handle for wait/kill; default: the payload's name")
    cgroup: str | None = Field(None, description="run it inside this cgroup")

    @field_validator("args", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"give a list of arguments such as [{value!r}], not a string")
        return tuple(value) if isinstance(value, list) else value

    @property
    def handle(self) -> str:
        return self.id or self.payload.name


class WaitPayload(Frozen):
    op: Literal["wait_payload"] = "wait_payload"
    id: str
    timeout_s: float = Field(60.0, gt=0)


class KillPayload(Frozen):
    op: Literal["kill_payload"] = "kill_payload"
    id: str


AnyOp = Annotated[
    AddCgroup | RemoveCgroup | SetCpuset | ClearCpuset | SwapCpusets | Spawn | StopCgroup
    | SetAffinity | MoveAllTasks | RunPayload | WaitPayload | KillPayload,
    Field(discriminator="op"),
]


class Op:
    """Constructors for step operations (``Op.add_cgroup(...)`` and so on)."""

    @staticmethod
    def add_cgroup(cgroup: CgroupDef) -> AddCgroup:
        return AddCgroup(cgroup=cgroup)

    @staticmethod
    def remove_cgroup(name: str) -> RemoveCgroup:
        return RemoveCgroup(name=name)

    @staticmethod
    def set_cpuset(name: str, cpuset: CpusetSpec) -> SetCpuset:
        return SetCpuset(name=name, cpuset=cpuset)

    @staticmethod
    def clear_cpuset(name: str) -> ClearCpuset:
        return ClearCpuset(name=name)

    @staticmethod
    def swap_cpusets(a: str, b: str) -> SwapCpusets:
        return SwapCpusets(a=a, b=b)

    @staticmethod
    def spawn(name: str, workers: int, work_type: WorkType | None = None) -> Spawn:
        return Spawn(name=name, workers=workers, work_type=work_type)

    @staticmethod
    def stop_cgroup(name: str) -> StopCgroup:
        return StopCgroup(name=name)

    @staticmethod
    def set_affinity(name: str, cpus: CpusetSpec | None) -> SetAffinity:
        return SetAffinity(name=name, cpus=cpus)

    @staticmethod
    def move_all_tasks(src: str, dst: str) -> MoveAllTasks:
        return MoveAllTasks(src=src, dst=dst)

    @staticmethod
    def run_payload(payload: Payload, args: list[str] | tuple[str, ...] = (), *,
                    id: str = "", cgroup: str | None = None) -> RunPayload:
        return RunPayload(payload=payload, args=tuple(args), id=id, cgroup=cgroup)

    @staticmethod
    def wait_payload(id: str, timeout_s: float = 60.0) -> WaitPayload:
        return WaitPayload(id=id, timeout_s=timeout_s)

    @staticmethod
    def kill_payload(id: str) -> KillPayload:
        return KillPayload(id=id)


def describe_op(op: AnyOp) -> str:
    if isinstance(op, AddCgroup):
        return f"add_cgroup {op.cgroup.describe()}"
    if isinstance(op, SetCpuset):
        return f"set_cpuset {op.name} {op.cpuset.describe()}"
    if isinstance(op, SwapCpusets):
        return f"swap_cpusets {op.a} {op.b}"
    if isinstance(op, Spawn):
        return f"spawn {op.name} {op.workers}x{op.work_type or ''}"
    if isinstance(op, SetAffinity):
        return f"set_affinity {op.name} {op.cpus.describe() if op.cpus else 'all'}"
    if isinstance(op, MoveAllTasks):
        return f"move_all_tasks {op.src} -> {op.dst}"
    if isinstance(op, RunPayload):
        return f"run_payload {op.handle} {' '.join(op.args)}".rstrip()
    if isinstance(op, WaitPayload | KillPayload):
        return f"{op.op} {op.id}"
    return f"{op.op} {op.name}"


class Step(Frozen):
    """Operations applied in order, then the hold."""

    ops: tuple[AnyOp, ...] = Field((), description="applied in order at the step's start")
    hold: Hold = Field(description="how long the step lasts")

    @field_validator("ops", mode="before")
    @classmethod
    def _ops_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value
