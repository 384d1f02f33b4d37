"""Pure parsers for what a verifier cell's guest script prints (``verify_guest.sh``).

Nothing here boots anything: each function takes text and returns typed values, so
the parsing is tested from recorded guest output.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import re
from collections.abc import Sequence

from pydantic import Field

from ktstr.declare.base import Frozen

SECTION = re.compile(r"^@@ktstr-verify:([a-z_]+)@@$")

#: the verifier's instruction limit for privileged programs
INSN_LIMIT = 1_000_000
#: programs over this fraction of the limit are flagged
FLAG_FRACTION = 0.75


class ProgVerdict(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


def split_sections(text: str) -> dict[str, str]:
    """``@@ktstr-verify:NAME@@`` lines open sections; returns NAME -> body."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = SECTION.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        if current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def join_sections(sections: dict[str, str]) -> str:
    """The sections back as one text with their markers (for the cell's log file)."""
    return "".join(f"@@ktstr-verify:{name}@@\n{body.rstrip(chr(10))}\n"
                   for name, body in sections.items())


class VeristatRow(Frozen):
    file: str
    prog: str
    verdict: ProgVerdict
    duration_us: int
    insns: int
    states: int
    peak_states: int
    stack_depth: int | None = None
    max_stack_depth: int | None = None


def _int(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_veristat_csv(text: str) -> list[VeristatRow]:
    """``veristat -o csv -e file,prog,verdict,duration,insns,states,peak_states[,...]``
    (header ``file_name,prog_name,verdict,duration,total_insns,...``)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("file_name,"):
        return []
    rows: list[VeristatRow] = []
    for rec in csv.DictReader(io.StringIO("\n".join(lines))):
        verdict = (rec.get("verdict") or "").strip().lower()
        if verdict not in ("success", "failure"):
            continue
        rows.append(VeristatRow(
            file=rec.get("file_name", ""), prog=rec.get("prog_name", ""),
            verdict=ProgVerdict(verdict), duration_us=_int(rec.get("duration")) or 0,
            insns=_int(rec.get("total_insns")) or 0, states=_int(rec.get("total_states")) or 0,
            peak_states=_int(rec.get("peak_states")) or 0,
            stack_depth=_int(rec.get("stack_depth")),
            max_stack_depth=_int(rec.get("max_stack_depth")),
        ))
    return rows


class LoadedProg(Frozen):
    """A program in the running kernel (``ktstr-proginfo``), with bpftool's full name."""

    id: int
    type: int
    verified_insns: int
    xlated_bytes: int
    jited_bytes: int
    name: str
    owners: list[str] = Field(default_factory=list)


def parse_proginfo(text: str) -> list[LoadedProg]:
    """``id<TAB>type<TAB>verified_insns<TAB>xlated<TAB>jited<TAB>name`` lines."""
    progs: list[LoadedProg] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or not all(p.isdigit() for p in parts[:5]):
            continue
        pid, ptype, vi, xl, jt = (int(p) for p in parts[:5])
        progs.append(LoadedProg(id=pid, type=ptype, verified_insns=vi, xlated_bytes=xl,
                                jited_bytes=jt, name=parts[5]))
    return progs


def bpftool_names(text: str) -> dict[int, tuple[str, list[str]]]:
    """``bpftool -j prog show`` -> id -> (full name, owning process names)."""
    try:
        data = json.loads(text.strip() or "[]")
    except ValueError:
        return {}
    out: dict[int, tuple[str, list[str]]] = {}
    for prog in data if isinstance(data, list) else []:
        if isinstance(prog, dict) and isinstance(prog.get("id"), int):
            owners = [str(p.get("comm", "")) for p in prog.get("pids", []) if isinstance(p, dict)]
            out[prog["id"]] = (str(prog.get("name", "")), owners)
    return out


def scheduler_progs(before: Sequence[LoadedProg], after: Sequence[LoadedProg],
                    names: dict[int, tuple[str, list[str]]]) -> list[LoadedProg]:
    """The programs the scheduler loaded: present after attaching but not before, with
    bpftool's full names (the kernel keeps 15 characters) and owners."""
    old = {p.id for p in before}
    out = []
    for p in after:
        if p.id in old:
            continue
        full, owners = names.get(p.id, (p.name, []))
        name = full if full.startswith(p.name) else p.name
        out.append(p.model_copy(update={"name": name, "owners": owners}))
    return out


def match_loaded(prog: str, loaded: Sequence[LoadedProg]) -> LoadedProg | None:
    """The loaded program for a veristat program name (exact, else the kernel's
    15-character prefix when that prefix is unique)."""
    exact = [p for p in loaded if p.name == prog]
    if exact:
        return exact[0]
    short = [p for p in loaded if len(p.name) == 15 and prog.startswith(p.name)]
    return short[0] if len(short) == 1 else None


def flagged(insns: int) -> bool:
    return insns > FLAG_FRACTION * INSN_LIMIT


_PROCESSING = re.compile(r"^PROCESSING (?P<file>.*?)/(?P<prog>[^/,]+), DURATION US: \d+, "
                         r"VERDICT: (?P<verdict>\w+), VERIFIER LOG:$")


def split_verbose_log(text: str) -> tuple[str, dict[str, str]]:
    """``veristat -v`` output -> (what came before any program: libbpf's messages,
    program name -> its verifier log)."""
    head: list[str] = []
    progs: dict[str, list[str]] = {}
    current = head
    for line in text.splitlines():
        m = _PROCESSING.match(line)
        if m:
            current = progs.setdefault(m.group("prog"), [])
            continue
        current.append(line)
    return "\n".join(head).strip(), {k: "\n".join(v).strip() for k, v in progs.items()}


_GENERIC = re.compile(r"failed to load (BPF skeleton|object)|-- (BEGIN|END) PROG LOAD LOG --|"
                      r"^Failed to process|^Failed to prepare|^\[SCX_BUG\]|Failed to load skel",
                      re.IGNORECASE)
_PROCESSED = re.compile(r"^processed \d+ insns \(limit \d+\)")


def failure_reason(*texts: str) -> str:
    """The kernel's or libbpf's own reason in a failed load: the first specific
    ``libbpf:`` line, else the verifier's last message before ``processed N insns``,
    else the first specific error-looking line."""
    for text in texts:
        for line in text.splitlines():
            s = line.strip()
            if s.startswith("libbpf:") and not _GENERIC.search(s):
                return s
    for text in texts:
        lines = [ln.strip() for ln in text.splitlines()]
        for i, line in enumerate(lines):
            if _PROCESSED.match(line):
                before = [ln for ln in lines[:i] if ln]
                if before:
                    return before[-1]
    for text in texts:
        for line in text.splitlines():
            s = line.strip()
            if s and re.search(r"error|fail|invalid|cannot|not supported", s, re.IGNORECASE):
                return s
    return ""


def omitted_marker(count: int) -> str:
    return f"--- {count} identical iterations omitted ---"


def collapse_repeats(text: str, *, max_period: int = 64, min_saved: int = 2) -> str:
    """Collapse consecutive repetitions of a block of lines: the block is kept once,
    followed by ``--- N identical iterations omitted ---`` for the N further copies.

    At each line the period (1..``max_period`` lines) that saves the most lines wins;
    repetitions saving fewer than ``min_saved`` lines are left alone.
    """
    lines = text.splitlines()
    ids: dict[str, int] = {}
    h = [ids.setdefault(ln, len(ids)) for ln in lines]
    n = len(h)
    out: list[str] = []
    i = 0
    while i < n:
        best_period, best_copies = 0, 0
        for p in range(1, min(max_period, (n - i) // 2) + 1):
            run = 0
            while i + run + p < n and h[i + run] == h[i + run + p]:
                run += 1
            copies = 1 + run // p
            if copies >= 2 and p * (copies - 1) > best_period * max(best_copies - 1, 0):
                best_period, best_copies = p, copies
        if best_copies >= 2 and best_period * (best_copies - 1) >= min_saved:
            out.extend(lines[i:i + best_period])
            out.append(omitted_marker(best_copies - 1))
            i += best_period * best_copies
        else:
            out.append(lines[i])
            i += 1
    return "\n".join(out)
