"""Terminal rendering of a ``RunResult``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from ktstr.results.model import RunResult, Verdict

_COLOURS = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.ERROR: "magenta",
            Verdict.SKIP: "yellow"}


def describe_workload(r: RunResult) -> str:
    """``spin for 5 s``; a payload runs until it exits, its duration is only a bound."""
    if r.workload.startswith("payload "):
        return f"{r.workload} (runs to its end; bound {r.duration_s:g} s + slack)"
    return f"{r.workload} for {r.duration_s:g} s"


def result_lines(r: RunResult) -> list[str]:
    lines = [
        f"scheduler:  {r.scheduler}  ({r.sched_outcome.value}"
        + (f", ops={r.sched_ops}" if r.sched_ops else "") + ")",
        f"kernel:     {r.kernel.release or r.kernel.version}"
        + (f"  sched_ext={'yes' if r.kernel.sched_ext else 'no'}"
           if r.kernel.sched_ext is not None else ""),
        f"topology:   {r.topology_requested}" + (f"  (guest saw {r.topology_seen})"
                                                  if r.topology_seen else ""),
        f"accel:      {r.accel or '-'}",
        f"workload:   {describe_workload(r)}",
    ]
    if r.boot:
        lines.insert(4, f"boot:       {r.boot}")
    if r.sched_args:
        lines.append(f"sched args: {' '.join(r.sched_args)}")
    for e in r.timeline:
        if e.name.startswith("sched_"):
            fields = " ".join(f"{k}={v}" for k, v in e.fields.items())
            lines.append(f"  t={e.t:7.2f}s  {e.name}  {fields}")
    t = r.timings
    parts = [f"{name}={value:.1f}s" for name, value in (
        ("boot", t.boot_s), ("attach", t.attach_s), ("workload", t.run_s),
        ("scheduler attached", t.sched_run_s), ("total", t.total_s)) if value is not None]
    if parts:
        lines.append("timings:    " + " ".join(parts))
    if "scenario" in r.stats:
        lines.extend(scenario_table(r.stats["scenario"]))
    for c in r.checks:
        lines.append(f"check {c.name}: {'ok' if c.passed else 'FAILED'} {c.detail}")
    for n in r.notes:
        lines.append(f"note:       {n}")
    lines.extend(repro_lines(r))
    return lines


def repro_lines(r: RunResult) -> list[str]:
    """What the traced rerun of a failed run found, and where its trace is."""
    rp = r.repro
    if rp is None:
        return []
    got = rp.repro_verdict.value.upper() + (f" ({rp.repro_class.value})" if rp.repro_class
                                            else "")
    lines = [f"repro:      {rp.status.value}: the traced rerun was {got}, the first run "
             f"{rp.first_class.value}"]
    tr = rp.trace
    if tr is None:
        lines.append("trace:      none (tracefs unavailable in the guest?)")
        return lines
    lines.append(f"trace:      {tr.json_path}  (Perfetto: ui.perfetto.dev, Open trace file; "
                 "or chrome://tracing)")
    lines.append(f"            {tr.text_path}  ({tr.events} events"
                 + (f", tail of {tr.bytes_total} bytes" if tr.truncated else "") + ")")
    if tr.failure_t is not None:
        lines.append(f"            failure at t={tr.failure_t:.6f}s on CPU {tr.failure_cpu} "
                     f"({tr.failure_source})")
    if tr.stalled is not None:
        wait = (f"runnable without running from t={tr.stalled_since:.6f}s"
                if tr.stalled_since is not None else "not seen runnable in the trace")
        lines.append(f"            stalled task {tr.stalled.comm}[{tr.stalled.pid}]: {wait}")
    if tr.missing:
        lines.append(f"            events this kernel lacks: {' '.join(tr.missing)}")
    return lines


#: scenario table columns: (header, cgroup stats key, format, higher is worse)
_CG_COLUMNS: tuple[tuple[str, str, str, bool], ...] = (
    ("UNITS", "work_units", "{:d}", False),
    ("SPREAD%", "spread_pct", "{:.1f}", True),
    ("MAXGAP ms", "max_gap_ms", "{:.1f}", True),
    ("P99WAKE us", "wake_p99_us", "{:.0f}", True),
    ("MIGR/SW", "migration_ratio", "{:.3f}", True),
    ("CV", "throughput_cv", "{:.3f}", True),
)


def scenario_table(stats: Mapping[str, Any], *, colour: bool = True) -> list[str]:
    """Per-cgroup table of a scenario run; the worst value of each column is marked
    ``*`` (and shown in red when ``colour``)."""
    cgroups: Mapping[str, Mapping[str, Any]] = stats.get("cgroups", {})
    if not cgroups:
        return []
    worst: dict[str, str] = {}
    for _, key, _, higher in _CG_COLUMNS:
        vals = [(v[key], n) for n, v in cgroups.items()
                if v.get(key) is not None and v.get("workers")]
        if len(vals) > 1 or (vals and higher):
            worst[key] = (max(vals) if higher else min(vals))[1]
    headers = ["CGROUP", "TYPE", "POLICY", "WORKERS", *(c[0] for c in _CG_COLUMNS), "CPUS"]
    rows: list[list[str]] = []
    marks: list[list[bool]] = []
    for name, v in cgroups.items():
        row = [name, str(v.get("work_type", "")), str(v.get("policy", "")),
               str(v.get("workers", ""))]
        mark = [False] * 4
        for _, key, fmt, _ in _CG_COLUMNS:
            val = v.get(key)
            row.append("-" if val is None else fmt.format(val)
                       + ("*" if worst.get(key) == name else ""))
            mark.append(worst.get(key) == name)
        row.append(str(v.get("cpus", "")) + (f" (cpuset {v['cpuset']})" if v.get("cpuset")
                                             else ""))
        mark.append(False)
        rows.append(row)
        marks.append(mark)
    note = (f"  (* worst per column; gap limit {stats.get('gap_threshold_ms', 0):g} ms = "
            f"max_gap_ms x {stats.get('gap_scale', 1):g})")
    return [*_styled_table(headers, rows, marks, colour=colour), note]


def _styled_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                  marks: Sequence[Sequence[bool]], *, colour: bool) -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row, mark in zip(rows, marks, strict=True):
        cells = [click.style(c.ljust(w), fg="red", bold=True) if m and colour else c.ljust(w)
                 for c, w, m in zip(row, widths, mark, strict=True)]
        out.append("  ".join(cells).rstrip())
    return out


def print_result(r: RunResult) -> None:
    for line in result_lines(r):
        click.echo(line)
    if r.verdict in (Verdict.FAIL, Verdict.ERROR):
        if r.ejection_reason or r.debug_dump:
            click.echo("--- scheduler debug dump (head) ---")
            click.echo("\n".join(r.debug_dump.splitlines()[:40]))
        if r.sched_log:
            click.echo("--- scheduler log (tail) ---")
            click.echo("\n".join(r.sched_log.splitlines()[-25:]))
        payload = r.stats.get("payload") or {}
        for stream in ("stdout", "stderr"):
            tail = payload.get(f"{stream}_tail", "")
            if tail:
                whole = f" (whole: {r.run_dir}/payload.{stream})" if r.run_dir else ""
                click.echo(f"--- payload {stream} (tail){whole} ---")
                click.echo("\n".join(str(tail).splitlines()[-20:]))
        if r.panic_text:
            click.echo("--- kernel panic ---")
            click.echo("\n".join(r.panic_text.splitlines()[:40]))
        elif r.console_tail and r.vm_outcome.value != "ok":
            click.echo("--- console (tail) ---")
            click.echo("\n".join(r.console_tail.splitlines()[-25:]))
    if r.run_dir:
        click.echo(f"run dir:    {r.run_dir}")
    click.echo(f"reproduce:  {r.reproducer}")
    head = click.style(r.verdict.value.upper() + (" (flaky)" if r.flaky else ""),
                       fg=_COLOURS[r.verdict], bold=True)
    click.echo(f"{head}" + (": " + "; ".join(r.reasons) if r.reasons else ""))
