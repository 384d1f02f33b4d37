"""Pure judgement of a scheduler run from what the guest and the console reported.

The scheduler process exits 0 even when the kernel ejected it, so the judgement uses
the guest's lifecycle events (attach proof, exits, state), the kernel's own
``sched_ext: BPF scheduler "X" disabled (REASON)`` line (from dmesg, sent by the guest),
and the scheduler's ``EXIT:`` line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ktstr.declare.base import Frozen
from ktstr.guest.protocol import Event
from ktstr.results.model import SchedOutcome, TimelineEntry

_DISABLED = re.compile(r'sched_ext: BPF scheduler "([^"]+)" disabled \(([^)]*)\)')
_EXIT_LINE = re.compile(r"^EXIT: (.*)$", re.MULTILINE)
#: the reason the kernel gives when user space unregisters the scheduler on purpose
CLEAN_UNREGISTER = "unregistered from user space"


class SchedJudgement(Frozen):
    outcome: SchedOutcome
    reasons: list[str]
    ops: str | None = None
    ejection_reason: str | None = None
    debug_dump: str = ""
    attach_t: float | None = None
    start_t: float | None = None


def timeline(events: Sequence[Event]) -> list[TimelineEntry]:
    return [TimelineEntry(t=e.uptime_s, name=e.name, fields=dict(e.fields)) for e in events]


def kernel_disable_reasons(dmesg: str) -> list[tuple[str, str]]:
    """(ops name, reason) for every ``disabled`` line, in order."""
    return [(m.group(1), m.group(2)) for m in _DISABLED.finditer(dmesg)]


def exit_line(sched_log: str) -> str | None:
    m = _EXIT_LINE.search(sched_log)
    return m.group(1).strip() if m else None


def debug_dump(sched_log: str, max_lines: int = 200) -> str:
    """The scheduler's ``DEBUG DUMP`` section, if it printed one."""
    lines = sched_log.splitlines()
    for i, line in enumerate(lines):
        if "DEBUG DUMP" in line:
            return "\n".join(lines[i:i + max_lines])
    return ""


_ERROR_LINE = re.compile(r"\b(fail(ed|ure)?|error|cannot|can't|unable|invalid|denied|not found|"
                         r"no such|unknown|missing)\b", re.IGNORECASE)


def error_lines(log: str, most: int = 2) -> str:
    """The lines of a scheduler's log that say what went wrong: the first ``most`` lines
    that look like errors, then the last line (libbpf's cause usually comes before the
    scheduler's own last word, e.g. ``failed to open system Kconfig`` before
    ``Failed to load skel``)."""
    lines = [ln.strip() for ln in log.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    picked = [ln for ln in lines if _ERROR_LINE.search(ln)][:most]
    if lines[-1] not in picked:
        picked.append(lines[-1])
    return " / ".join(picked)


#: what the guest reports for each kind of setup failure (event ``setup_failed``)
_SETUP_WHAT = {
    "sysctl": "sysctl {key}={value} could not be applied",
    "cgroup_parent": "cgroup parent {key} could not be created",
    "include_file": "include file {key} is not in the guest",
    "karg": "the kernel rejected kernel argument(s) {value}",
}


def setup_errors(events: Sequence[Event]) -> list[str]:
    """A broken test setup, one line each: a sysctl the kernel refused, a cgroup parent
    that could not be made, an include file that is not where it should be, a kernel
    argument the kernel did not know. These make a run ERROR, not FAIL."""
    out = []
    for e in events:
        if e.name != "setup_failed":
            continue
        what = e.fields.get("what", "?")
        template = _SETUP_WHAT.get(what, what + " {key} {value}")
        text = template.format(key=e.fields.get("key", "?"), value=e.fields.get("value", ""))
        err = e.fields.get("error", "").strip()
        out.append(f"setup: {text}" + (f": {err}" if err else ""))
    return out


def judge_scheduler(
    events: Sequence[Event],
    *,
    has_active_scheduling: bool,
    sched_log: str = "",
    dmesg: str = "",
    attach_bound: str = "",
) -> SchedJudgement:
    """What happened to the scheduler, and why a test should fail because of it."""
    by_name: dict[str, Event] = {}
    for e in events:
        by_name.setdefault(e.name, e)
    if not has_active_scheduling:
        return SchedJudgement(outcome=SchedOutcome.NONE, reasons=[])
    start = by_name.get("sched_started") or by_name.get("sched_enable_cmds")
    attached = by_name.get("sched_attached")
    exited = by_name.get("sched_exited")
    not_attached = by_name.get("sched_not_attached")
    detached = by_name.get("sched_detached")
    stopped = by_name.get("sched_stopped")
    kill_needed = by_name.get("sched_kill_needed")
    ops = attached.fields.get("ops") if attached else None
    disabled = kernel_disable_reasons(dmesg)
    bad_disable = [(o, r) for o, r in disabled if r != CLEAN_UNREGISTER]
    exit_msg = exit_line(sched_log)
    dump = debug_dump(sched_log)
    common = {
        "ops": ops,
        "debug_dump": dump,
        "attach_t": attached.uptime_s if attached else None,
        "start_t": start.uptime_s if start else None,
    }
    if attached is None:
        if bad_disable:
            # the kernel can eject a scheduler while it is still being enabled
            name, reason = bad_disable[0]
            why = (f'ejected: kernel disabled BPF scheduler "{name}" ({reason}) before the '
                   "attach proof completed")
            return SchedJudgement(outcome=SchedOutcome.EJECTED, reasons=[why],
                                  ejection_reason=reason, **common)
        if exited is not None:
            code = exited.fields.get("code", "?")
            why = f"died: scheduler exited with code {code} before attaching"
            if exit_msg:
                why += f" ({exit_msg})"
            elif sched_log.strip():
                why += f": {error_lines(sched_log)}"
            return SchedJudgement(outcome=SchedOutcome.DIED, reasons=[why], **common)
        if not_attached is not None:
            why = (f"not attached: scheduler alive but sched_ext state stayed "
                   f"{not_attached.fields.get('state', '?')!r} for "
                   f"{not_attached.fields.get('timeout_s', '?')} s")
            if attach_bound:
                why += f" (attach bound: {attach_bound}; KTSTR_TIMEOUT_SCALE raises it)"
            return SchedJudgement(outcome=SchedOutcome.NOT_ATTACHED, reasons=[why], **common)
        return SchedJudgement(outcome=SchedOutcome.UNKNOWN,
                              reasons=["scheduler never reported attach or exit"], **common)
    if bad_disable:
        name, reason = bad_disable[0]
        why = f'ejected: kernel disabled BPF scheduler "{name}" ({reason})'
        if exit_msg and exit_msg != reason:
            why += f"; scheduler said EXIT: {exit_msg}"
        return SchedJudgement(outcome=SchedOutcome.EJECTED, reasons=[why],
                              ejection_reason=reason, **common)
    if exited is not None:
        code = exited.fields.get("code", "?")
        why = f"died: scheduler exited with code {code} while the workload ran"
        if exit_msg:
            why += f" (EXIT: {exit_msg})"
        elif sched_log.strip():
            why += f": {error_lines(sched_log)}"
        return SchedJudgement(outcome=SchedOutcome.DIED, reasons=[why], **common)
    if detached is not None:
        why = f"ejected: sched_ext state became {detached.fields.get('state', '?')!r} mid-run"
        return SchedJudgement(outcome=SchedOutcome.EJECTED, reasons=[why], **common)
    if kill_needed is not None:
        return SchedJudgement(outcome=SchedOutcome.UNCLEAN_STOP,
                              reasons=["scheduler ignored SIGINT and had to be killed"], **common)
    if stopped is not None and stopped.fields.get("state") not in (None, "disabled"):
        return SchedJudgement(
            outcome=SchedOutcome.UNCLEAN_STOP,
            reasons=[f"sched_ext state stayed {stopped.fields.get('state')!r} after stop"],
            **common,
        )
    return SchedJudgement(outcome=SchedOutcome.ATTACHED, reasons=[], **common)
