"""Pure: a repro run's ftrace text (tracefs ``trace``, nop tracer, scheduler events)
parsed into typed events, and what a developer looks at next:

- ``chrome_trace``: Chrome trace-event JSON (opens in Perfetto or ``chrome://tracing``):
  one track per CPU with what ran on it, wake-ups, the failure instant, the stalled
  task's runnable wait on a track of its own, and every other task that was waiting at
  the failure;
- ``failure_window``: the last seconds before the failure as per-CPU run segments (the
  HTML report draws it);
- ``runnable_since``: since when a task was runnable without running (a stall's proof).

Times are the trace clock in seconds; the agent sets the ``boot`` clock, the clock of
``/proc/uptime``, so they are on the guest's uptime line like the agent's events.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import Field

from ktstr.declare.base import Frozen

#: tracefs events a repro run asks for (``SYS/*``: every event of the system the
#: kernel has; sched_ext's differ between versions)
TRACE_EVENTS = ("sched/sched_switch", "sched/sched_wakeup", "sched/sched_wakeup_new",
                "sched/sched_migrate_task", "sched/sched_process_exit", "sched_ext/*")

# "  comm-PID  [CPU] flags  TS: event: body"; comm may hold spaces and dashes, the tgid
# column "(  123)" is there with options/record-tgid, the flags column may be missing
_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[\]]{4,6})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>[\w]+):\s?(?P<body>.*)$")
_SWITCH = re.compile(
    r"prev_comm=(?P<prev_comm>.*?) prev_pid=(?P<prev_pid>-?\d+) prev_prio=(?P<prev_prio>-?\d+)"
    r" prev_state=(?P<prev_state>\S+) ==> next_comm=(?P<next_comm>.*?) "
    r"next_pid=(?P<next_pid>-?\d+) next_prio=(?P<next_prio>-?\d+)")
_KV = re.compile(r"(\w+)=(.*?)(?= \w+=|$)")
_LOST = re.compile(r"^CPU:(\d+) \[LOST (\d+) EVENTS\]")
#: the kernel's stall message: "(COMM[PID] failed to run for 5.123s)"
_STALL = re.compile(r"(?P<comm>[^\s(\[][^\s\[]*)\[(?P<pid>\d+)\] failed to run for "
                    r"(?P<secs>\d+(?:\.\d+)?)s")
#: the debug dump's head: "COMM[PID] triggered exit kind 1025 on CPU 2:"
_EXIT_SITE = re.compile(r"(?P<comm>[^\s\[]+)\[(?P<pid>\d+)\] triggered exit kind "
                        r"(?P<kind>\d+) on CPU (?P<cpu>\d+)")


class TraceEvent(Frozen):
    t: float = Field(description="trace clock, seconds")
    cpu: int
    pid: int = Field(description="the task current on the CPU when the event fired")
    comm: str
    name: str
    fields: dict[str, str] = Field(default_factory=dict)
    text: str = ""


class ParsedTrace(Frozen):
    events: list[TraceEvent] = Field(default_factory=list)
    #: events the ring buffer dropped, per CPU ("CPU:N [LOST M EVENTS]")
    lost: dict[int, int] = Field(default_factory=dict)
    #: lines that were neither a header nor an event
    unparsed: int = 0

    @property
    def cpus(self) -> list[int]:
        return sorted({e.cpu for e in self.events})

    @property
    def start(self) -> float | None:
        return self.events[0].t if self.events else None

    @property
    def end(self) -> float | None:
        return self.events[-1].t if self.events else None


def _fields(event: str, body: str) -> dict[str, str]:
    if event == "sched_switch":
        m = _SWITCH.search(body)
        return m.groupdict() if m else {}
    if event in ("sched_ext_dump", "tracing_mark_write"):
        return {}
    return {k: v.strip() for k, v in _KV.findall(body)}


def parse_line(line: str) -> TraceEvent | None:
    m = _LINE.match(line)
    if m is None:
        return None
    event, body = m.group("event"), m.group("body")
    return TraceEvent(t=float(m.group("ts")), cpu=int(m.group("cpu")), pid=int(m.group("pid")),
                      comm=m.group("comm").strip(), name=event, fields=_fields(event, body),
                      text=body)


def parse_trace(text: str) -> ParsedTrace:
    """Every event of tracefs ``trace`` text, in the file's (time) order."""
    events: list[TraceEvent] = []
    lost: dict[int, int] = {}
    unparsed = 0
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        ev = parse_line(line)
        if ev is not None:
            events.append(ev)
            continue
        lm = _LOST.match(line.strip())
        if lm:
            lost[int(lm.group(1))] = lost.get(int(lm.group(1)), 0) + int(lm.group(2))
        else:
            unparsed += 1
    events.sort(key=lambda e: e.t)
    return ParsedTrace(events=events, lost=lost, unparsed=unparsed)


class FailureSource(enum.StrEnum):
    """What marks the failure instant in the trace, best first."""

    EXIT_EVENT = "sched_ext_exit"  # the kernel's own exit tracepoint (7.3 and later)
    DUMP = "sched_ext_dump"  # the first line of the kernel's debug dump
    AGENT = "agent"  # the agent saw the scheduler go (its trace marker)


class ExitSite(Frozen):
    """Where the kernel says the exit was triggered (the debug dump's head)."""

    comm: str
    pid: int
    kind: int
    cpu: int


def exit_site(*texts: str) -> ExitSite | None:
    for text in texts:
        m = _EXIT_SITE.search(text or "")
        if m:
            return ExitSite(comm=m.group("comm"), pid=int(m.group("pid")),
                            kind=int(m.group("kind")), cpu=int(m.group("cpu")))
    return None


class FailureInstant(Frozen):
    t: float
    #: the CPU the kernel names for the exit (the dump's head), else where it was recorded
    cpu: int
    recorded_cpu: int
    source: FailureSource
    what: str = ""
    site: ExitSite | None = None


def failure_instant(trace: ParsedTrace) -> FailureInstant | None:
    """When the scheduler failed, on the trace clock: the kernel's exit event, else the
    first line of its debug dump, else the agent's marker when it saw it go."""
    dump = "\n".join(e.text for e in trace.events if e.name == "sched_ext_dump")
    site = exit_site(dump)
    for source in FailureSource:
        for e in trace.events:
            if _marks(source, e):
                return FailureInstant(t=e.t, cpu=site.cpu if site else e.cpu,
                                      recorded_cpu=e.cpu, source=source,
                                      what=e.text.strip(), site=site)
    return None


def _marks(source: FailureSource, e: TraceEvent) -> bool:
    if source is FailureSource.EXIT_EVENT:
        return e.name == "sched_ext_exit"
    if source is FailureSource.DUMP:
        return e.name == "sched_ext_dump"
    return e.name == "tracing_mark_write" and ("sched_detached" in e.text
                                               or "sched_exited" in e.text)


class StalledTask(Frozen):
    comm: str
    pid: int
    #: how long the kernel said it had waited
    waited_s: float


def stalled_task(*texts: str) -> StalledTask | None:
    """The task a ``runnable task stall`` names (``COMM[PID] failed to run for Ns``), from
    the scheduler's log or the kernel's debug dump."""
    for text in texts:
        m = _STALL.search(text or "")
        if m:
            return StalledTask(comm=m.group("comm"), pid=int(m.group("pid")),
                               waited_s=float(m.group("secs")))
    return None


def waiting_at(trace: ParsedTrace, until: float) -> dict[int, tuple[float, str]]:
    """Every task runnable without running at ``until``: pid -> (since when, comm). A
    task waits from a wake-up or a preemption (switched out in state R/R+) until a switch
    to it; one pass over the trace."""
    since: dict[int, tuple[float, str]] = {}
    for e in trace.events:
        if e.t > until:
            break
        f = e.fields
        if e.name == "sched_switch" and "next_pid" in f:
            since.pop(int(f["next_pid"]), None)
            if f.get("prev_state", "").startswith("R") and f.get("prev_pid", "0") != "0":
                since.setdefault(int(f["prev_pid"]), (e.t, f.get("prev_comm", "")))
        elif e.name in ("sched_wakeup", "sched_wakeup_new") and f.get("pid", "").isdigit():
            since.setdefault(int(f["pid"]), (e.t, f.get("comm", "")))
        elif e.name == "sched_process_exit" and f.get("pid", "").isdigit():
            since.pop(int(f["pid"]), None)
    return since


def runnable_since(trace: ParsedTrace, pid: int, until: float) -> float | None:
    """Since when ``pid`` was runnable without running at ``until``: its last wake-up or
    preemption before ``until`` with no switch to it after; None if it ran (or never
    became runnable in the trace)."""
    got = waiting_at(trace, until).get(pid)
    return got[0] if got is not None else None


class RunSegment(Frozen):
    cpu: int
    start: float
    end: float
    pid: int
    comm: str


def run_segments(trace: ParsedTrace, until: float | None = None) -> list[RunSegment]:
    """What ran on each CPU, from one ``sched_switch`` to the next (to ``until`` or the
    end of the trace for the last one). Before a CPU's first switch nothing is known."""
    end = until if until is not None else (trace.end or 0.0)
    current: dict[int, tuple[float, int, str]] = {}
    out: list[RunSegment] = []
    for e in trace.events:
        if e.t > end:
            break
        if e.name != "sched_switch" or "next_pid" not in e.fields:
            continue
        prev = current.get(e.cpu)
        if prev is not None and e.t > prev[0]:
            out.append(RunSegment(cpu=e.cpu, start=prev[0], end=e.t, pid=prev[1], comm=prev[2]))
        current[e.cpu] = (e.t, int(e.fields["next_pid"]), e.fields["next_comm"])
    for cpu, (start, pid, comm) in sorted(current.items()):
        if end > start:
            out.append(RunSegment(cpu=cpu, start=start, end=end, pid=pid, comm=comm))
    return sorted(out, key=lambda s: (s.cpu, s.start))


class WaitingTask(Frozen):
    pid: int
    comm: str
    since: float


#: waiting tasks a window keeps
MAX_WAITING = 8


class TraceWindow(Frozen):
    """The last seconds before the failure, per CPU: what the HTML report draws."""

    start: float
    end: float
    failure_t: float | None = None
    failure_cpu: int | None = None
    cpus: list[int] = Field(default_factory=list)
    segments: list[RunSegment] = Field(default_factory=list)
    stalled_pid: int | None = None
    stalled_comm: str = ""
    stalled_since: float | None = None
    #: the other tasks runnable without running at the failure for WAITING_MIN_S or
    #: more, longest first (at most ``MAX_WAITING``)
    waiting: list[WaitingTask] = Field(default_factory=list)
    #: segments left out to keep the window small (the shortest, never the stalled task's)
    dropped: int = 0


def failure_window(trace: ParsedTrace, *, seconds: float = 3.0,
                   stalled: StalledTask | None = None, max_segments: int = 4000
                   ) -> TraceWindow | None:
    """``seconds`` before the failure instant (else before the end of the trace)."""
    if not trace.events:
        return None
    fail = failure_instant(trace)
    end = fail.t if fail is not None else (trace.end or 0.0)
    start = end - seconds
    segs = [s.model_copy(update={"start": max(s.start, start)})
            for s in run_segments(trace, until=end) if s.end > start]
    dropped = 0
    if len(segs) > max_segments:
        keep = sorted(segs, key=lambda s: (stalled is None or s.pid != stalled.pid,
                                           -(s.end - s.start)))[:max_segments]
        dropped = len(segs) - len(keep)
        segs = sorted(keep, key=lambda s: (s.cpu, s.start))
    waits = waiting_at(trace, end)
    since = waits[stalled.pid][0] if stalled is not None and stalled.pid in waits else None
    waiting = sorted((WaitingTask(pid=pid, comm=comm, since=t)
                      for pid, (t, comm) in waits.items()
                      if end - t >= WAITING_MIN_S and (stalled is None or pid != stalled.pid)),
                     key=lambda w: w.since)[:MAX_WAITING]
    return TraceWindow(
        start=start, end=end, failure_t=fail.t if fail else None,
        failure_cpu=fail.cpu if fail else None, cpus=trace.cpus, segments=segs,
        stalled_pid=stalled.pid if stalled else None,
        stalled_comm=stalled.comm if stalled else "", stalled_since=since, waiting=waiting,
        dropped=dropped)


def _us(t: float, origin: float) -> float:
    return round((t - origin) * 1e6, 3)


#: the Chrome trace's process ids: the CPUs, the stalled task's own track, and the
#: other tasks that were waiting at the failure
CPU_PROCESS, TASK_PROCESS, WAITING_PROCESS = 1, 2, 3
#: the shortest wait at the failure that gets a track of its own
WAITING_MIN_S = 0.5


def chrome_trace(trace: ParsedTrace, *, title: str = "ktstr repro",
                 stalled: StalledTask | None = None, reason: str = "") -> dict[str, Any]:
    """Chrome trace-event JSON: per-CPU tracks (tid = CPU) of what ran, wake-ups as
    instants on the target CPU, sched_ext events and the kernel's dump, the failure as a
    global instant, and the stalled task's runnable wait. Timestamps are microseconds
    from the start of the trace (``otherData.origin_s`` is that start on the trace
    clock)."""
    origin = trace.start or 0.0
    fail = failure_instant(trace)
    out: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": CPU_PROCESS, "args": {"name": "CPUs"}},
        {"ph": "M", "name": "process_sort_index", "pid": CPU_PROCESS,
         "args": {"sort_index": 0}},
    ]
    for cpu in trace.cpus:
        out.append({"ph": "M", "name": "thread_name", "pid": CPU_PROCESS, "tid": cpu,
                    "args": {"name": f"CPU {cpu}"}})
        out.append({"ph": "M", "name": "thread_sort_index", "pid": CPU_PROCESS, "tid": cpu,
                    "args": {"sort_index": cpu}})
    for s in run_segments(trace):
        out.append({"ph": "X", "pid": CPU_PROCESS, "tid": s.cpu, "ts": _us(s.start, origin),
                    "dur": _us(s.end, s.start), "name": f"{s.comm} [{s.pid}]",
                    "cat": "idle" if s.pid == 0 else "task",
                    "args": {"pid": s.pid, "comm": s.comm}})
    dump: list[TraceEvent] = []
    for e in trace.events:
        if e.name in ("sched_wakeup", "sched_wakeup_new"):
            target = e.fields.get("target_cpu", str(e.cpu))
            out.append({"ph": "i", "s": "t", "pid": CPU_PROCESS,
                        "tid": int(target) if target.isdigit() else e.cpu,
                        "ts": _us(e.t, origin), "cat": "wakeup",
                        "name": f"{e.name} {e.fields.get('comm', '?')} [{e.fields.get('pid')}]",
                        "args": dict(e.fields)})
        elif e.name == "sched_migrate_task":
            out.append({"ph": "i", "s": "t", "pid": CPU_PROCESS, "tid": e.cpu,
                        "ts": _us(e.t, origin), "cat": "migrate",
                        "name": f"migrate {e.fields.get('comm', '?')} [{e.fields.get('pid')}] "
                                f"{e.fields.get('orig_cpu')}->{e.fields.get('dest_cpu')}",
                        "args": dict(e.fields)})
        elif e.name == "sched_process_exit":
            out.append({"ph": "i", "s": "t", "pid": CPU_PROCESS, "tid": e.cpu,
                        "ts": _us(e.t, origin), "cat": "exit",
                        "name": f"exit {e.fields.get('comm', '?')} [{e.fields.get('pid')}]",
                        "args": dict(e.fields)})
        elif e.name == "sched_ext_dump":
            dump.append(e)
        elif e.name.startswith("sched_ext") or e.name == "tracing_mark_write":
            out.append({"ph": "i", "s": "t", "pid": CPU_PROCESS, "tid": e.cpu,
                        "ts": _us(e.t, origin), "cat": e.name, "name": e.text.strip()[:120],
                        "args": {"event": e.name, "text": e.text}})
    if dump:
        out.append({"ph": "i", "s": "t", "pid": CPU_PROCESS, "tid": dump[0].cpu,
                    "ts": _us(dump[0].t, origin), "cat": "sched_ext_dump",
                    "name": "sched_ext debug dump",
                    "args": {"lines": len(dump), "text": "\n".join(e.text for e in dump)}})
    if fail is not None:
        out.append({"ph": "i", "s": "g", "pid": CPU_PROCESS, "tid": fail.cpu,
                    "ts": _us(fail.t, origin), "cat": "failure",
                    "name": f"FAILURE{': ' + reason if reason else ''}",
                    "args": {"source": fail.source.value, "cpu": fail.cpu, "text": fail.what}})
    until = fail.t if fail is not None else (trace.end or origin)
    waits = {pid: w for pid, w in waiting_at(trace, until).items()
             if until - w[0] >= WAITING_MIN_S and (stalled is None or pid != stalled.pid)}
    if waits:
        out.append({"ph": "M", "name": "process_name", "pid": WAITING_PROCESS,
                    "args": {"name": f"runnable, not running at the failure (>= "
                                     f"{WAITING_MIN_S:g} s)"}})
    for pid, (since_t, comm) in sorted(waits.items(), key=lambda pw: pw[1][0]):
        out.append({"ph": "M", "name": "thread_name", "pid": WAITING_PROCESS, "tid": pid,
                    "args": {"name": f"{comm} [{pid}]"}})
        out.append({"ph": "X", "pid": WAITING_PROCESS, "tid": pid, "ts": _us(since_t, origin),
                    "dur": _us(until, since_t), "name": "runnable, not running",
                    "cat": "waiting", "args": {"pid": pid, "comm": comm,
                                               "waited_s": round(until - since_t, 6)}})
    if stalled is not None:
        since = runnable_since(trace, stalled.pid, until)
        out.append({"ph": "M", "name": "process_name", "pid": TASK_PROCESS,
                    "args": {"name": f"stalled task {stalled.comm} [{stalled.pid}]"}})
        if since is not None:
            out.append({"ph": "X", "pid": TASK_PROCESS, "tid": stalled.pid,
                        "ts": _us(since, origin), "dur": _us(until, since),
                        "name": "runnable, not running", "cat": "stall",
                        "args": {"pid": stalled.pid, "waited_s": round(until - since, 6),
                                 "kernel_says_s": stalled.waited_s}})
    return {"traceEvents": out, "displayTimeUnit": "ms",
            "otherData": {"title": title, "origin_s": origin, "clock": "boot",
                          "lost_events": {str(k): v for k, v in trace.lost.items()},
                          "failure_s": fail.t if fail else None,
                          "failure_source": fail.source.value if fail else None}}


def tasks_named(events: Iterable[dict[str, Any]]) -> set[int]:
    """The pids of the tasks drawn on the CPU tracks of a Chrome trace (for checks)."""
    return {int(e["args"]["pid"]) for e in events if e.get("ph") == "X"
            and e.get("pid") == CPU_PROCESS}


def last_event_cpus(trace: ParsedTrace, names: Sequence[str]) -> list[int]:
    """The CPUs of the events named ``names``, in order (e.g. where the dump ran)."""
    return [e.cpu for e in trace.events if e.name in names]


def running_at(trace: ParsedTrace, cpu: int, t: float) -> RunSegment | None:
    """What ran on ``cpu`` at ``t`` (the last switch to it at or before ``t``)."""
    for s in run_segments(trace, until=t):
        if s.cpu == cpu and s.start <= t <= s.end:
            return s
    return None


def last_seen_on(trace: ParsedTrace, pid: int, cpu: int, until: float) -> TraceEvent | None:
    """The last event at or before ``until`` that puts ``pid`` on ``cpu``: it ran there
    (current, or switched to), or was woken or migrated there. The task the kernel names
    for an error is the one being scheduled when it fired, which need not be running yet
    (an enqueue on wake-up)."""
    seen: TraceEvent | None = None
    p = str(pid)
    for e in trace.events:
        if e.t > until:
            break
        f = e.fields
        on_cpu = e.cpu == cpu and (e.pid == pid or f.get("next_pid") == p)
        sent = f.get("pid") == p and (
            (e.name in ("sched_wakeup", "sched_wakeup_new")
             and f.get("target_cpu", "").isdigit() and int(f["target_cpu"]) == cpu)
            or (e.name == "sched_migrate_task" and f.get("dest_cpu") == str(cpu)))
        if on_cpu or sent:
            seen = e
    return seen
