"""What the verifier sweep prints, and ``diff`` of two sweeps (pure).

- ``program_table``: per scheduler, rows = kernels, columns = programs, cell =
  verified_insns (``lo..hi`` across topologies; ``FAIL`` where it failed; ``!`` marks a
  program over 75 % of the instruction limit);
- ``pass_grid``: kernel x topology outcomes;
- ``failures``: every cell that did not pass, with its reason, log and reproducer;
- ``diff_sweeps``: per-program deltas between two sweeps, regressions flagged.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from ktstr.cli.output import table
from ktstr.declare.base import Frozen
from ktstr.kernel.id import version_key
from ktstr.results.model import Verdict
from ktstr.sweep.guestout import ProgVerdict
from ktstr.sweep.runner import CellResult
from ktstr.sweep.verifier import VerifierDetail

#: terminal width the program tables wrap at (the kernel column repeats)
TABLE_WIDTH = 100


def details(results: Sequence[CellResult]) -> list[tuple[CellResult, VerifierDetail]]:
    return [(r, VerifierDetail.model_validate(r.detail)) for r in results
            if r.detail and r.kind == "verifier"]


def _kernel_order(kernels: set[str]) -> list[str]:
    def key(k: str) -> tuple[tuple[int, ...], str]:
        try:
            return tuple(version_key(k)), k
        except Exception:
            return (), k
    return sorted(kernels, key=key)


def common_prefix(names: Sequence[str]) -> str:
    """The shared ``xxx_`` prefix of program names (``simple_``), or ``""``."""
    if len(names) < 2:
        return ""
    first, last = min(names), max(names)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    prefix = first[:n]
    return prefix[: prefix.rfind("_") + 1] if "_" in prefix else ""


def span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}..{hi}"


def column_groups(widths: Sequence[int], *, first: int, limit: int = TABLE_WIDTH
                  ) -> list[list[int]]:
    """Split columns (by index) into tables no wider than ``limit``, each repeating the
    first column of width ``first``; a column wider than the limit gets its own table."""
    groups: list[list[int]] = [[]]
    used = first
    for i, w in enumerate(widths):
        if groups[-1] and used + 2 + w > limit:
            groups.append([])
            used = first
        groups[-1].append(i)
        used += 2 + w
    return groups


def program_table(results: Sequence[CellResult], scheduler: str) -> str:
    cells = [(r, d) for r, d in details(results) if d.scheduler == scheduler]
    if not cells:
        return f"{scheduler}: no results"
    kernels = _kernel_order({d.kernel for _, d in cells})
    progs = sorted({p.name for _, d in cells for p in d.programs})
    prefix = common_prefix(progs)
    rows = []
    for k in kernels:
        row: list[object] = [k]
        in_k = [d for _, d in cells if d.kernel == k]
        for name in progs:
            stats = [p for d in in_k if (p := d.program(name)) is not None]
            if not stats:
                row.append("-")
            elif any(p.verdict is ProgVerdict.FAILURE for p in stats):
                row.append("FAIL")
            else:
                mark = "!" if any(p.flagged for p in stats) else ""
                row.append(span([p.verified_insns for p in stats]) + mark)
        if not progs:
            row.append("(no programs)")
        rows.append(row)
    short = [n.removeprefix(prefix) for n in progs] or ["programs"]
    title = f"{scheduler}: verified instructions per program" + (
        f" (columns without the '{prefix}' prefix)" if prefix else "")
    legend = ("cell = verified_insns (lo..hi across topologies); FAIL = failed verification; "
              "! = over 75% of the 1,000,000-instruction limit")
    widths = [max(len(short[i]), *(len(str(r[1 + i])) for r in rows))
              for i in range(len(short))]
    groups = column_groups(widths, first=max(len("kernel"), *(len(k) for k in kernels)))
    tables = [table(["kernel", *(short[i] for i in group)],
                    [[row[0], *(row[1 + i] for i in group)] for row in rows])
              for group in groups]
    return "\n".join([title, "\n\n".join(tables), legend])


def pass_grid(results: Sequence[CellResult], scheduler: str) -> str:
    cells = [(r, d) for r, d in details(results) if d.scheduler == scheduler]
    errors = [r for r in results if r.kind == "verifier" and not r.detail
              and r.cell.get("scheduler") == scheduler]
    kernels = _kernel_order({d.kernel for _, d in cells}
                            | {str(r.cell.get("kernel", {}).get("version", "?")) for r in errors})
    presets = sorted({d.preset for _, d in cells} | {str(r.cell.get("preset")) for r in errors})
    outcome: dict[tuple[str, str], str] = {}
    for r, d in cells:
        outcome[(d.kernel, d.preset)] = r.outcome.value.upper()
    for r in errors:
        outcome[(str(r.cell["kernel"]["version"]), str(r.cell["preset"]))] = \
            r.outcome.value.upper()
    rows = [[k, *(outcome.get((k, p), "-") for p in presets)] for k in kernels]
    return f"{scheduler}: pass grid (kernel x topology)\n{table(['kernel', *presets], rows)}"


def failures(results: Sequence[CellResult]) -> str:
    bad = [r for r in results if r.outcome in (Verdict.FAIL, Verdict.ERROR)]
    if not bad:
        return "failing cells: none"
    out = [f"failing cells: {len(bad)}"]
    for r in bad:
        out.append(f"  {r.outcome.value.upper():5} {r.id}")
        out.extend(f"        {why}" for why in r.reasons)
        if r.detail:
            d = VerifierDetail.model_validate(r.detail)
            if d.failed_programs:
                more = len(d.failed_programs) - 8
                out.append(f"        programs: {', '.join(d.failed_programs[:8])}"
                           + (f" and {more} more" if more > 0 else ""))
            if d.log_dir:
                out.append(f"        logs: {d.log_dir}")
            if d.reproducer:
                out.append(f"        reproduce: {d.reproducer}")
            if d.guest_reproducer:
                out.append(f"        full verifier log: {d.guest_reproducer}")
    return "\n".join(out)


def flagged_programs(results: Sequence[CellResult]) -> list[str]:
    return [f"{r.id}: {p.name} {p.verified_insns} insns" for r, d in details(results)
            for p in d.programs if p.flagged]


def render(results: Sequence[CellResult]) -> str:
    scheds = sorted({d.scheduler for _, d in details(results)}
                    | {str(r.cell.get("scheduler")) for r in results if not r.detail})
    parts = []
    for s in scheds:
        parts += [program_table(results, s), pass_grid(results, s)]
    flagged = flagged_programs(results)
    if flagged:
        parts.append("over 75% of the instruction limit:\n  " + "\n  ".join(flagged))
    parts.append(failures(results))
    counts = {o: sum(r.outcome is o for r in results) for o in Verdict}
    parts.append(f"{len(results)} cells: " + ", ".join(
        f"{n} {o.value.upper()}" for o, n in counts.items() if n))
    return "\n\n".join(parts)


# -- diff ------------------------------------------------------------------------------

class ProgramDelta(Frozen):
    key: str = Field(description="scheduler/preset/program (with the kernel when both "
                                 "sweeps share kernels)")
    old: int | None = None
    new: int | None = None
    delta: int | None = None
    pct: float | None = None
    regression: bool = False
    note: str = ""


def _values(results: Sequence[CellResult], with_kernel: bool) -> dict[str, tuple[int, bool,
                                                                                 bool]]:
    out = {}
    for _, d in details(results):
        for p in d.programs:
            parts = [d.scheduler, d.kernel, d.preset, p.name] if with_kernel else \
                [d.scheduler, d.preset, p.name]
            out["/".join(parts)] = (p.verified_insns, p.verdict is ProgVerdict.FAILURE,
                                    p.flagged)
    return out


def diff_sweeps(old: Sequence[CellResult], new: Sequence[CellResult], *,
                threshold_pct: float = 10.0) -> list[ProgramDelta]:
    """Per-program deltas of verified_insns. When the two sweeps share no kernel (the
    usual "7.2 vs 7.3" comparison) programs are paired by scheduler/preset/program;
    otherwise by kernel too. A regression: growth over ``threshold_pct``, a program
    that now fails, or one newly over 75 % of the limit."""
    k_old = {d.kernel for _, d in details(old)}
    k_new = {d.kernel for _, d in details(new)}
    with_kernel = bool(k_old & k_new)
    a, b = _values(old, with_kernel), _values(new, with_kernel)
    out = []
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            out.append(ProgramDelta(key=key, old=a[key][0], note="gone"))
            continue
        if key not in a:
            out.append(ProgramDelta(key=key, new=b[key][0], note="new",
                                    regression=b[key][1] or b[key][2]))
            continue
        (ov, ofail, oflag), (nv, nfail, nflag) = a[key], b[key]
        delta = nv - ov
        pct = (100.0 * delta / ov) if ov else None
        notes, reg = [], False
        if nfail and not ofail:
            notes.append("now fails")
            reg = True
        if nflag and not oflag:
            notes.append("now over 75% of the limit")
            reg = True
        if pct is not None and pct > threshold_pct and not nfail:
            notes.append(f"grew more than {threshold_pct:g}%")
            reg = True
        out.append(ProgramDelta(key=key, old=ov, new=nv, delta=delta,
                                pct=round(pct, 1) if pct is not None else None,
                                regression=reg, note="; ".join(notes)))
    return out


def render_diff(deltas: Sequence[ProgramDelta]) -> str:
    rows = [[d.key, "" if d.old is None else d.old, "" if d.new is None else d.new,
             "" if d.delta is None else f"{d.delta:+d}",
             "" if d.pct is None else f"{d.pct:+.1f}%",
             ("REGRESSION " if d.regression else "") + d.note] for d in deltas]
    regs = sum(d.regression for d in deltas)
    return (table(["program", "old", "new", "delta", "%", "flag"], rows)
            + f"\n\n{len(deltas)} programs compared, {regs} regression(s)")
