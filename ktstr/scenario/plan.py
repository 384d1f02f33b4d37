"""Pure: check a ``Scenario`` against a topology and turn it into guest commands.

``plan_scenario`` walks the steps in order, keeping track of which cgroups exist, and
produces, per step, the shell lines (calls of the ``scn_*`` functions of
``initramfs/lib/scenario.sh``) plus what the checks need afterwards: each cgroup's
work type and policy and every CPU its cpuset allowed at any point of the run.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology
from ktstr.errors import UserError
from ktstr.scenario.cgroup import CgroupDef, SchedPolicy, WorkType
from ktstr.scenario.cpuset import CpusetSpec, cpulist, resolve_cpus
from ktstr.scenario.scenario import Scenario
from ktstr.scenario.steps import (
    AddCgroup,
    AnyOp,
    ClearCpuset,
    KillPayload,
    LoopHold,
    MoveAllTasks,
    RemoveCgroup,
    RunPayload,
    SetAffinity,
    SetCpuset,
    Spawn,
    StopCgroup,
    SwapCpusets,
    WaitPayload,
    describe_op,
)

#: default number of workers of a ``CgroupDef`` that leaves ``workers`` unset
DEFAULT_WORKERS = 2
DEFAULT_ROOT = "/ktstr"


class CgroupPlan(Frozen):
    """What the checks know about one cgroup (``name`` is its path below the root)."""

    name: str
    key: str
    work_type: WorkType
    sched_policy: SchedPolicy
    nice: int = 0
    workers: int = Field(0, description="worker processes spawned over the whole run")
    cpuset_ever: bool = Field(False, description="a cpuset restricted it at some point")
    allowed_cpus: tuple[int, ...] = Field((), description="union of its effective cpusets")


class StepPlan(Frozen):
    index: int
    describe: str
    lines: tuple[str, ...]
    hold_cs: int = Field(description="hold, centiseconds")
    loop_cs: int = Field(0, description="loop interval, centiseconds (0: no loop)")


class ScenarioPlan(Frozen):
    name: str
    root: str
    duration_s: float
    steps: tuple[StepPlan, ...]
    cgroups: tuple[CgroupPlan, ...]
    payload_ids: tuple[str, ...] = ()

    @property
    def total_s(self) -> float:
        return sum(s.hold_cs for s in self.steps) / 100

    def cgroup(self, name: str) -> CgroupPlan | None:
        return next((c for c in self.cgroups if c.name == name), None)


class _Cg:
    def __init__(self, name: str, key: str, d: CgroupDef) -> None:
        self.name, self.key, self.d = name, key, d
        self.cpus: tuple[int, ...] | None = None
        self.alive = True
        self.workers = 0
        self.cpuset_ever = False
        self.allowed: set[int] = set()


class _Planner:
    def __init__(self, topology: Topology, default_workers: int) -> None:
        self.t = topology
        self.all_cpus = tuple(range(topology.total_cpus))
        self.default_workers = default_workers
        self.cgs: dict[str, _Cg] = {}
        self.moves: list[tuple[str, str]] = []
        self.payloads: dict[str, bool] = {}  # id -> running
        self.where = ""

    def fail(self, msg: str) -> UserError:
        return UserError(f"{self.where}: {msg}")

    def cpus(self, spec: CpusetSpec) -> tuple[int, ...]:
        try:
            return resolve_cpus(spec, self.t)
        except UserError as exc:
            raise self.fail(str(exc)) from exc

    def live(self, name: str) -> _Cg:
        cg = self.cgs.get(name)
        if cg is None or not cg.alive:
            known = ", ".join(sorted(n for n, c in self.cgs.items() if c.alive)) or "none"
            raise self.fail(f"no cgroup {name!r} exists at this point (existing: {known})")
        return cg

    def effective(self, cg: _Cg) -> tuple[int, ...]:
        cpus = set(self.all_cpus)
        parts = cg.name.split("/")
        for i in range(1, len(parts) + 1):
            anc = self.cgs.get("/".join(parts[:i]))
            if anc is not None and anc.cpus is not None:
                cpus &= set(anc.cpus)
        return tuple(sorted(cpus))

    def account(self) -> None:
        for cg in self.cgs.values():
            if cg.alive:
                cg.allowed.update(self.effective(cg))

    def spawn_line(self, cg: _Cg, count: int, wt: WorkType, pol: SchedPolicy, prio: int,
                   nice: int, affinity: CpusetSpec | None) -> str:
        cg.workers += count
        aff = cpulist(self.cpus(affinity)) if affinity else ""
        return _cmd("scn_spawn", cg.key, cg.name, count, wt.value, pol.value, prio, nice, aff)

    def add(self, d: CgroupDef, parent: str, out: list[str]) -> None:
        name = f"{parent}/{d.name}" if parent else d.name
        old = self.cgs.get(name)
        if old is not None and old.alive:
            raise self.fail(f"cgroup {name!r} already exists")
        cg = _Cg(name, old.key if old else f"c{len(self.cgs)}", d)
        if old is not None:
            cg.workers, cg.allowed, cg.cpuset_ever = old.workers, old.allowed, old.cpuset_ever
        self.cgs[name] = cg
        if d.cpuset_spec is not None:
            cg.cpus = self.cpus(d.cpuset_spec)
            cg.cpuset_ever = True
        out.append(_cmd("scn_cg_add", cg.key, name, cpulist(cg.cpus or ())))
        for child in d.subgroups:
            self.add(child, name, out)
        n = d.worker_count(self.default_workers)
        if n:
            out.append(self.spawn_line(cg, n, d.work_kind, d.policy, d.priority,
                                       d.nice_value, d.affinity_spec))

    def op(self, op: AnyOp, out: list[str]) -> None:
        if isinstance(op, AddCgroup):
            self.add(op.cgroup, "", out)
        elif isinstance(op, RemoveCgroup):
            cg = self.live(op.name)
            kids = [c for n, c in self.cgs.items() if n.startswith(cg.name + "/") and c.alive]
            for kid in sorted(kids, key=lambda c: -c.name.count("/")):
                kid.alive = False
                out.append(_cmd("scn_cg_remove", kid.key, kid.name))
            cg.alive = False
            out.append(_cmd("scn_cg_remove", cg.key, cg.name))
        elif isinstance(op, SetCpuset):
            cg = self.live(op.name)
            cg.cpus, cg.cpuset_ever = self.cpus(op.cpuset), True
            out.append(_cmd("scn_cg_cpus", cg.key, cg.name, cpulist(cg.cpus)))
        elif isinstance(op, ClearCpuset):
            cg = self.live(op.name)
            cg.cpus = None
            out.append(_cmd("scn_cg_cpus", cg.key, cg.name, ""))
        elif isinstance(op, SwapCpusets):
            a, b = self.live(op.a), self.live(op.b)
            a.cpus, b.cpus = b.cpus, a.cpus
            out.append(_cmd("scn_cg_cpus", a.key, a.name, cpulist(a.cpus or ())))
            out.append(_cmd("scn_cg_cpus", b.key, b.name, cpulist(b.cpus or ())))
        elif isinstance(op, Spawn):
            cg = self.live(op.name)
            d = cg.d
            out.append(self.spawn_line(
                cg, op.workers, op.work_type or d.work_kind, op.sched_policy or d.policy,
                op.priority if op.sched_policy else d.priority,
                d.nice_value if op.nice is None else op.nice, d.affinity_spec))
        elif isinstance(op, StopCgroup):
            cg = self.live(op.name)
            out.append(_cmd("scn_stop", cg.key, cg.name))
        elif isinstance(op, SetAffinity):
            cg = self.live(op.name)
            cpus = self.cpus(op.cpus) if op.cpus else self.all_cpus
            out.append(_cmd("scn_affinity", cg.key, cg.name, cpulist(cpus)))
        elif isinstance(op, MoveAllTasks):
            src, dst = self.live(op.src), self.live(op.dst)
            self.moves.append((src.name, dst.name))
            out.append(_cmd("scn_move", src.key, src.name, dst.key, dst.name))
        elif isinstance(op, RunPayload):
            if op.payload.executable is None:
                raise self.fail(f"payload {op.payload.name!r} has no executable to run")
            if self.payloads.get(op.handle):
                raise self.fail(f"payload id {op.handle!r} is already running: give the "
                                "second run another id=")
            cgname = self.live(op.cgroup).name if op.cgroup else ""
            self.payloads[op.handle] = True
            exe = op.payload.executable.rsplit("/", 1)[-1]
            out.append(_cmd("scn_payload_run", op.handle, cgname, exe,
                            *op.payload.args_with(op.args)))
        elif isinstance(op, WaitPayload | KillPayload):
            if op.id not in self.payloads:
                raise self.fail(f"no payload with id {op.id!r} was started before this step "
                                f"(started: {', '.join(self.payloads) or 'none'})")
            self.payloads[op.id] = False
            if isinstance(op, WaitPayload):
                out.append(_cmd("scn_payload_wait", op.id, max(1, round(op.timeout_s))))
            else:
                out.append(_cmd("scn_payload_kill", op.id))
        self.account()

    def result(self) -> tuple[CgroupPlan, ...]:
        allowed = {n: set(c.allowed) for n, c in self.cgs.items()}
        changed = True
        while changed:  # a moved worker may run wherever its destination allowed
            changed = False
            for src, dst in self.moves:
                if not allowed[dst] <= allowed[src]:
                    allowed[src] |= allowed[dst]
                    changed = True
        return tuple(
            CgroupPlan(name=n, key=c.key, work_type=c.d.work_kind,
                       sched_policy=c.d.policy, nice=c.d.nice_value, workers=c.workers,
                       cpuset_ever=c.cpuset_ever, allowed_cpus=tuple(sorted(allowed[n])))
            for n, c in self.cgs.items()
        )


_ONCE_ONLY = (AddCgroup, RemoveCgroup, RunPayload, WaitPayload, KillPayload)


def _cmd(*words: object) -> str:
    return " ".join(shlex.quote(str(w)) if str(w) else "''" for w in words)


def plan_scenario(
    scenario: Scenario,
    topology: Topology,
    *,
    duration_s: float,
    default_workers: int = DEFAULT_WORKERS,
    root: str = DEFAULT_ROOT,
) -> ScenarioPlan:
    """Validate ``scenario`` on ``topology`` and plan its guest commands (pure).

    ``UserError`` names the step and operation that cannot work (an unknown cgroup, a
    cpuset the topology cannot give, holds longer than ``duration_s``).
    """
    p = _Planner(topology, default_workers)
    steps: list[StepPlan] = []
    used = 0.0
    for i, step in enumerate(scenario.steps, 1):
        lines: list[str] = []
        for j, op in enumerate(step.ops, 1):
            p.where = f"scenario {scenario.name!r} step {i} op {j} ({describe_op(op)})"
            if isinstance(step.hold, LoopHold) and isinstance(op, _ONCE_ONLY):
                raise p.fail(f"{op.op} cannot repeat in a Hold.loop step; put it in a step "
                             "of its own before the loop")
            p.op(op, lines)
        secs = step.hold.seconds(duration_s)
        if secs is None:
            secs = duration_s - used
            if secs <= 0:
                raise UserError(f"scenario {scenario.name!r} step {i}: the earlier steps use "
                                f"all {duration_s:g} s, nothing is left for the open loop")
        used += secs
        if used > duration_s * 1.0001:
            raise UserError(f"scenario {scenario.name!r}: the holds up to step {i} last "
                            f"{used:g} s, more than the run's duration {duration_s:g} s; "
                            "raise the duration or shorten the fixed holds")
        loop_cs = round(step.hold.value * 100) if isinstance(step.hold, LoopHold) else 0
        steps.append(StepPlan(index=i, lines=tuple(lines), hold_cs=max(1, round(secs * 100)),
                              loop_cs=loop_cs, describe=step.hold.describe()))
    return ScenarioPlan(name=scenario.name, root=root, duration_s=duration_s,
                        steps=tuple(steps), cgroups=p.result(),
                        payload_ids=tuple(p.payloads))


def worker_total(plans: Sequence[CgroupPlan]) -> int:
    return sum(c.workers for c in plans)
