"""A line-fed parser of the guest's serial console: typed events, no I/O."""

from __future__ import annotations

import enum
import re
from collections import deque

from ktstr.declare.base import Frozen


class ConsoleEventKind(enum.StrEnum):
    PANIC = "panic"
    OOPS = "oops"
    EMULATOR_FAULT = "emulator_fault"
    SCHED_EXT_DISABLED = "sched_ext_disabled"
    SCHED_EXT_ENABLED = "sched_ext_enabled"


class ConsoleEvent(Frozen):
    kind: ConsoleEventKind
    line: str
    detail: str = ""


_PANIC = re.compile(r"Kernel panic - not syncing:?\s*(.*)")
_OOPS_INT3 = re.compile(r"Oops: int3")
#: the boot-time timer check failing: under TCG on a loaded host the emulated timer
#: interrupt arrives too late for the kernel's check (seen in CI); the emulator's timing,
#: not the kernel's or the scheduler's fault
_TIMER_CHECK = re.compile(r"IO-APIC \+ timer doesn't work")
_OOPS = re.compile(r"\b(Oops|BUG): (.*)")
_SCX_DISABLED = re.compile(r'sched_ext: BPF scheduler "([^"]+)" disabled \(([^)]*)\)')
_SCX_ENABLED = re.compile(r'sched_ext: BPF scheduler "([^"]+)" enabled')
_TS = re.compile(r"^\[\s*\d+\.\d+\]\s*")


class ConsoleParser:
    """Feed lines; get events; keep a bounded tail for reports."""

    def __init__(self, tail_lines: int = 200, *, tcg: bool = True) -> None:
        #: ``Oops: int3`` is an emulator fault only under TCG (static-key patching in
        #: multi-threaded TCG, LAB notes); under KVM it is the guest's own oops
        self.tcg = tcg
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self.events: list[ConsoleEvent] = []
        self.panic_text: list[str] = []
        self._in_panic = False

    def feed(self, raw: str) -> list[ConsoleEvent]:
        line = raw.rstrip("\r\n")
        self.tail.append(line)
        body = _TS.sub("", line)
        out: list[ConsoleEvent] = []
        if self._in_panic:
            self.panic_text.append(line)
        if (m := _PANIC.search(body)) and self.tcg and _TIMER_CHECK.search(m.group(1)):
            self.panic_text.append(line)
            out.append(ConsoleEvent(kind=ConsoleEventKind.EMULATOR_FAULT, line=line,
                                    detail="the boot-time timer check failed under TCG"))
        elif m:
            self._in_panic = True
            self.panic_text.append(line)
            out.append(ConsoleEvent(kind=ConsoleEventKind.PANIC, line=line, detail=m.group(1)))
        elif self.tcg and _OOPS_INT3.search(body):
            out.append(ConsoleEvent(kind=ConsoleEventKind.EMULATOR_FAULT, line=line,
                                    detail="Oops: int3 (static-key patching under TCG)"))
        elif m := _OOPS.search(body):
            out.append(ConsoleEvent(kind=ConsoleEventKind.OOPS, line=line, detail=m.group(2)))
        elif m := _SCX_DISABLED.search(body):
            out.append(ConsoleEvent(kind=ConsoleEventKind.SCHED_EXT_DISABLED, line=line,
                                    detail=f"{m.group(1)}: {m.group(2)}"))
        elif m := _SCX_ENABLED.search(body):
            out.append(ConsoleEvent(kind=ConsoleEventKind.SCHED_EXT_ENABLED, line=line,
                                    detail=m.group(1)))
        self.events.extend(out)
        return out

    def tail_text(self, lines: int = 60) -> str:
        return "\n".join(list(self.tail)[-lines:])
