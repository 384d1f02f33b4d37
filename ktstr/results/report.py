"""Terminal rendering of a ``RunResult``."""

from __future__ import annotations

import click

from ktstr.results.model import RunResult, Verdict

_COLOURS = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.ERROR: "magenta",
            Verdict.SKIP: "yellow"}


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
        f"workload:   {r.workload} for {r.duration_s:g} s",
    ]
    if r.sched_args:
        lines.append(f"sched args: {' '.join(r.sched_args)}")
    for e in r.timeline:
        if e.name.startswith("sched_"):
            fields = " ".join(f"{k}={v}" for k, v in e.fields.items())
            lines.append(f"  t={e.t:7.2f}s  {e.name}  {fields}")
    t = r.timings
    parts = [f"{name}={value:.1f}s" for name, value in (
        ("boot", t.boot_s), ("attach", t.attach_s), ("total", t.total_s)) if value is not None]
    if parts:
        lines.append("timings:    " + " ".join(parts))
    for c in r.checks:
        lines.append(f"check {c.name}: {'ok' if c.passed else 'FAILED'} {c.detail}")
    return lines


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
        if r.panic_text:
            click.echo("--- kernel panic ---")
            click.echo("\n".join(r.panic_text.splitlines()[:40]))
        elif r.console_tail and r.vm_outcome.value != "ok":
            click.echo("--- console (tail) ---")
            click.echo("\n".join(r.console_tail.splitlines()[-25:]))
    if r.run_dir:
        click.echo(f"run dir:    {r.run_dir}")
    click.echo(f"reproduce:  {r.reproducer}")
    head = click.style(r.verdict.value.upper(), fg=_COLOURS[r.verdict], bold=True)
    click.echo(f"{head}" + (": " + "; ".join(r.reasons) if r.reasons else ""))
