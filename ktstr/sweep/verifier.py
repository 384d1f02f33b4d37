"""A verifier cell's result: per-program statistics and the verdict, judged (purely)
from the guest's output.

Pass = veristat verified every program of the scheduler's BPF object **and** the
scheduler, started for real, reached ``state=enabled``. The table value of a program is
``verified_insns``: the running scheduler's ``bpf_prog_info.verified_insns`` (its
read-only data set for this topology) when it loaded the program, else veristat's count.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.results.model import Verdict, VmOutcome
from ktstr.sweep import guestout as g
from ktstr.sweep.cells import VerifierCell

#: how much of each failed program's (collapsed) verifier log the JSON keeps
LOG_TAIL_LINES = 120


class ProgramStats(Frozen):
    name: str
    verdict: g.ProgVerdict
    insns: int = Field(0, description="veristat: instructions processed")
    states: int = 0
    peak_states: int = 0
    duration_us: int = Field(0, description="veristat: verification time")
    stack_depth: int | None = None
    max_stack_depth: int | None = None
    loaded_insns: int | None = Field(None, description="the running scheduler's "
                                     "bpf_prog_info.verified_insns")
    xlated_bytes: int | None = None
    jited_bytes: int | None = None
    log: str = Field("", description="verifier log tail, repeated blocks collapsed")

    @property
    def verified_insns(self) -> int:
        return self.loaded_insns if self.loaded_insns is not None else self.insns

    @property
    def flagged(self) -> bool:
        return g.flagged(max(self.insns, self.loaded_insns or 0))


class VerifierDetail(Frozen):
    scheduler: str
    kernel: str
    kernel_release: str = ""
    preset: str
    topology: str
    build_series: str
    bpf_object: str = ""
    programs: list[ProgramStats] = Field(default_factory=list)
    attached: bool = False
    sched_state: str = ""
    ops: str = ""
    attach_s: float | None = None
    veristat_rc: int | None = None
    failure_reason: str = ""
    failed_programs: list[str] = Field(default_factory=list)
    flagged_programs: list[str] = Field(default_factory=list)
    load_log: str = ""
    sched_log: str = ""
    vm_outcome: VmOutcome | None = None
    vm_detail: str = ""
    boot_s: float | None = None
    reproducer: str = ""
    guest_reproducer: str = ""
    log_dir: str = ""

    def program(self, name: str) -> ProgramStats | None:
        return next((p for p in self.programs if p.name == name), None)


def _tail(text: str, lines: int) -> str:
    kept = text.splitlines()[-lines:]
    return "\n".join(kept)


def _attach_seconds(window: str) -> float | None:
    parts = window.split()
    try:
        return round(float(parts[1]) - float(parts[0]), 2) if len(parts) == 2 else None
    except ValueError:
        return None


def programs_from(rows: Sequence[g.VeristatRow], loaded: Sequence[g.LoadedProg],
                  logs: dict[str, str]) -> list[ProgramStats]:
    """veristat's rows joined with the running scheduler's programs by name; programs
    only the scheduler loaded (no object given) are kept too."""
    out: list[ProgramStats] = []
    used: set[int] = set()
    for r in rows:
        lp = g.match_loaded(r.prog, loaded)
        if lp is not None:
            used.add(lp.id)
        log = g.collapse_repeats(logs.get(r.prog, "")) if r.verdict is g.ProgVerdict.FAILURE \
            else ""
        out.append(ProgramStats(
            name=r.prog, verdict=r.verdict, insns=r.insns, states=r.states,
            peak_states=r.peak_states, duration_us=r.duration_us, stack_depth=r.stack_depth,
            max_stack_depth=r.max_stack_depth,
            loaded_insns=lp.verified_insns if lp else None,
            xlated_bytes=lp.xlated_bytes if lp else None,
            jited_bytes=lp.jited_bytes if lp else None, log=_tail(log, LOG_TAIL_LINES)))
    if not rows:
        for lp in loaded:
            if lp.id not in used:
                out.append(ProgramStats(name=lp.name, verdict=g.ProgVerdict.SUCCESS,
                                        loaded_insns=lp.verified_insns,
                                        xlated_bytes=lp.xlated_bytes, jited_bytes=lp.jited_bytes))
    return sorted(out, key=lambda p: p.name)


def guest_reproducer(cell: VerifierCell, obj_host_path: str, veristat_host_path: str) -> str:
    """A ``ktstr shell`` command that shows the full verifier log of this cell."""
    t = cell.topology
    name = obj_host_path.rsplit("/", 1)[-1]
    return shlex.join([
        "ktstr", "shell", "--kernel", cell.kernel.version, "--memory-mb", "1024",
        "--topology", f"{t.numa_nodes},{t.llcs},{t.cores_per_llc},{t.threads_per_core}",
        "-i", veristat_host_path, "-i", obj_host_path,
        "--exec", f"veristat -v /include-files/{name}",
    ])


def judge_cell(cell: VerifierCell, sections: dict[str, str], *, has_object: bool,
               base: VerifierDetail) -> tuple[Verdict, list[str], VerifierDetail]:
    """The verdict from the guest script's sections (see ``verify_guest.sh``)."""
    reasons: list[str] = []
    if "end" not in sections:
        return Verdict.ERROR, ["the guest script did not finish (no end marker)"], base
    rows = g.parse_veristat_csv(sections.get("veristat_csv", ""))
    rc = sections.get("veristat_rc", "").strip()
    before = g.parse_proginfo(sections.get("progs_before", ""))
    after = g.parse_proginfo(sections.get("progs_loaded", ""))
    names = g.bpftool_names(sections.get("bpftool_json", ""))
    loaded = g.scheduler_progs(before, after, names)
    head, logs = g.split_verbose_log(sections.get("verifier_log", ""))
    programs = programs_from(rows, loaded, logs)
    state = sections.get("state", "").strip()
    attached = state == "enabled"
    sched_log = sections.get("sched_log", "")
    failed = [p.name for p in programs if p.verdict is g.ProgVerdict.FAILURE]
    reason = ""
    if has_object and not rows:
        reasons.append(f"veristat reported no programs (exit {rc or '?'}): "
                       + (g.failure_reason(sections.get("veristat_err", ""), head)
                          or "no output"))
    if failed:
        reason = g.failure_reason(head, *(logs.get(n, "") for n in failed),
                                  sections.get("veristat_err", ""))
        reasons.append(f"{len(failed)} of {len(programs)} programs failed verification "
                       f"({', '.join(failed[:6])}{', ...' if len(failed) > 6 else ''})"
                       + (f": {reason}" if reason else ""))
    if not attached:
        why = g.failure_reason(sched_log, head)
        reason = reason or why
        reasons.append(f"the scheduler did not reach state=enabled (state={state or '?'})"
                       + (f": {why}" if why else ""))
    flagged = [p.name for p in programs if p.flagged]
    detail = base.model_copy(update={
        "programs": programs, "attached": attached, "sched_state": state,
        "ops": sections.get("ops", "").strip(),
        "attach_s": _attach_seconds(sections.get("attach_window", "")),
        "veristat_rc": int(rc) if rc.lstrip("-").isdigit() else None,
        "failure_reason": reason or (reasons[0] if reasons else ""),
        "failed_programs": failed, "flagged_programs": flagged,
        "load_log": g.collapse_repeats(head)[-8000:], "sched_log": sched_log[-8000:],
    })
    return (Verdict.FAIL if reasons else Verdict.PASS), reasons, detail


def judge_vm(outcome: VmOutcome, detail: str) -> tuple[Verdict, str]:
    """A VM that did not return the script's result: a kernel panic is the cell's
    FAIL; timeouts, emulator faults and launch failures are ERROR (infrastructure)."""
    if outcome is VmOutcome.CRASHED:
        return Verdict.FAIL, f"kernel panic: {detail}"
    return Verdict.ERROR, f"{outcome.value}: {detail}"
