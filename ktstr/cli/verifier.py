"""``ktstr verifier``: every registered scheduler's BPF programs through the kernel's
verifier, across kernels and topologies; ``ktstr verifier diff`` compares two sweeps."""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ktstr.cli.app import App, pass_app
from ktstr.cli.options import accel_option, cold_boot_option

if TYPE_CHECKING:
    from ktstr.declare.scheduler import Scheduler
    from ktstr.sweep.cells import Exclusion, VerifierCell

EXIT_FAIL = 1
EXIT_ERROR = 3


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = width * done // total if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA ?"
    s = round(seconds)
    return f"ETA {s // 60}m{s % 60:02d}s"


def _progress(event: object) -> None:
    from ktstr.sweep.runner import ProgressEvent

    assert isinstance(event, ProgressEvent)
    if event.kind == "start":
        click.echo(f"ktstr: start {event.cell_id} ({event.running} running)", err=True)
        return
    r = event.result
    assert r is not None
    how = "resumed" if r.resumed else f"{r.duration_s:.1f}s"
    click.echo(f"ktstr: {_bar(event.done, event.total)} {event.done}/{event.total} "
               f"{r.outcome.value.upper():5} {r.id} ({how}) {_eta(event.eta_s)}", err=True)


def _default_out() -> Path:
    from ktstr import paths

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return paths.cache_root() / "sweeps" / f"verifier-{stamp}"


@click.group("verifier", invoke_without_command=True)
@click.option("-k", "--kernel", "kernels", multiple=True, metavar="SPEC",
              help="Kernel: version (7.2, 7.2.13), range (7.2..=7.3: every available "
              "version), path or cache key. Repeatable. Default: the newest cached kernel.")
@click.option("-s", "--scheduler", "scheduler_names", multiple=True, metavar="NAME",
              help="Only these registered schedulers (repeatable). Default: all with a binary.")
@click.option("--preset", "presets", multiple=True, metavar="NAME",
              help="Only these presets (repeatable). Default: every preset the scheduler's "
              "constraints accept on this host.")
@click.option("-t", "--topology", "topologies", multiple=True, metavar="N,L,C,T",
              help="An explicit topology (repeatable), used as a preset named by its label.")
@click.option("--build-series", default=None, metavar="X.Y",
              help="Load the schedulers built from this source series on every kernel "
              "(default: each kernel's own series). E.g. 7.2 to see the 7.2 build on 7.3.")
@click.option("--list", "list_only", is_flag=True, help="Print the cells, run nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github-matrix", "gitlab"]),
              default="text", show_default=True, help="--list output format.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write every cell's result to this JSON file.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Sweep directory (a result file per finished cell, logs). "
              "Default: <cache>/sweeps/verifier-<time>.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Continue the sweep in DIR: finished cells are not run "
              "again (ERROR cells are).")
@click.option("--cpu-budget", type=int, default=None, envvar="KTSTR_CPU_BUDGET",
              help="Host CPUs the sweep may keep busy; a cell costs one (its guest runs one "
              "program at a time), and a VM booted cold waits for its vCPUs' worth "
              "(env KTSTR_CPU_BUDGET; default: host CPUs).")
@click.option("-j", "--jobs", type=int, default=None,
              help="At most this many VMs at once (default: the budget).")
@click.option("--exit-zero", is_flag=True,
              help="Exit 0 even when cells fail (errors in ktstr itself still exit 2).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write an HTML report: verified instructions per "
              "program by kernel and topology, the pass grid (needs ktstr[compare]).")
@accel_option
@cold_boot_option
@pass_app
@click.pass_context
def verifier(ctx: click.Context, app: App, kernels: tuple[str, ...],
             scheduler_names: tuple[str, ...], presets: tuple[str, ...],
             topologies: tuple[str, ...], build_series: str | None, list_only: bool, fmt: str,
             json_file: Path | None, out_dir: Path | None, resume_dir: Path | None,
             cpu_budget: int | None, jobs: int | None, exit_zero: bool,
             html_file: Path | None, accel: str) -> None:
    """Verify every registered scheduler's BPF programs on each kernel and topology.

    Each cell (scheduler x kernel x topology) boots the kernel, runs veristat on the
    scheduler's BPF object in the guest and loads the scheduler for real. A cell passes
    when every program verifies and the scheduler reaches state=enabled. Prints a table
    of verified instructions per program, a pass grid and the failing cells with their
    verifier log and a reproducer. Exit code: 0 all passed, 1 a cell failed, 3 a cell
    errored (the harness or emulator failed).

    \b
    Examples:
      ktstr verifier --kernel 7.2 --kernel 7.3 --scheduler scx_simple --preset tiny-1llc
      ktstr verifier --kernel 7.2 --kernel 7.3 -s scx_qmap --build-series 7.2 -t 1,1,2,1
      ktstr verifier --kernel 7.2 --list --format github-matrix
      ktstr verifier diff old.json new.json
    """
    if ctx.invoked_subcommand is not None:
        return
    from ktstr.declare.topology import HostCapacity
    from ktstr.errors import UserError
    from ktstr.sweep.cells import MatrixFormat, ci_matrix, expand_verifier_cells, topology_choices
    from ktstr.sweep.kernels import kernel_entries

    if resume_dir and out_dir and resume_dir != out_dir:
        raise UserError("give --resume DIR or --out DIR, not both")
    if html_file is not None:
        from ktstr.cli.compare import need_compare_extra

        need_compare_extra()
    reg = app.registry
    scheds = [reg.scheduler(n) for n in scheduler_names] if scheduler_names \
        else reg.swept_schedulers()
    entries = kernel_entries(kernels, fetch=not list_only)
    plan = expand_verifier_cells(scheds, entries, HostCapacity.detect(),
                                 presets=topology_choices(presets, topologies),
                                 build_series=build_series)
    if list_only:
        click.echo(ci_matrix(plan.cells, MatrixFormat(fmt), app.declaration_modules))
        _explain_excluded(plan.excluded, verbose=app.verbose > 0)
        return
    if not plan.cells:
        reasons = "; ".join(f"{e.scheduler} {e.kernel} {e.preset}: {e.reason}"
                            for e in plan.excluded[:5])
        raise UserError(f"no verifier cells to run ({reasons or 'no schedulers'})")
    _run(app, plan.cells, scheds, json_file, resume_dir or out_dir or _default_out(),
         resume=resume_dir is not None, budget=cpu_budget, jobs=jobs, accel=accel,
         exit_zero=exit_zero, html_file=html_file)


def _explain_excluded(excluded: Sequence[Exclusion], *, verbose: bool) -> None:
    """On stderr: every left-out combination with -v, else one line per reason kind."""
    if verbose:
        for ex in excluded:
            where = "/".join(x for x in (ex.scheduler, ex.kernel, ex.preset) if x)
            click.echo(f"# no cell {where}: {ex.reason}", err=True)
        return
    # numbers become N (host sizes, counts) but quoted kernel specs stay as they are
    kinds = Counter(re.sub(r"(?<![\w.'])\d+(?![\w.'])", "N", ex.reason) for ex in excluded)
    for reason, n in kinds.most_common():
        click.echo(f"# {n} combination(s) left out: {reason}", err=True)
    if excluded:
        click.echo("# (-v lists each one)", err=True)


def _run(app: App, cells: list[VerifierCell], scheds: list[Scheduler],
         json_file: Path | None, root: Path, *, resume: bool, budget: int | None,
         jobs: int | None, accel: str, exit_zero: bool, html_file: Path | None = None) -> None:
    from ktstr.results.model import Verdict
    from ktstr.sweep.execute import VerifierExecutor
    from ktstr.sweep.report import render
    from ktstr.sweep.runner import ResultStore, interrupt_note, run_cells, write_summary
    from ktstr.vm.host import AccelRequest

    store = ResultStore(root)
    click.echo(f"ktstr: {len(cells)} verifier cells; results in {root}", err=True)
    executor = VerifierExecutor({s.name: s for s in scheds}, store, accel=AccelRequest(accel),
                                declaration_modules=app.declaration_modules)
    with interrupt_note(store):
        results = run_cells(cells, executor, kind="verifier", store=store, budget=budget,
                            max_parallel=jobs, resume=resume, progress=_progress)
    click.echo(render(results))
    if json_file is not None:
        write_summary(json_file, "verifier", results, {"sweep_dir": str(root)})
        click.echo(f"ktstr: wrote {json_file}", err=True)
    if html_file is not None:
        from ktstr.results.html import Report, write_report

        write_report(html_file, Report(title="ktstr verifier", sources=[str(root)],
                                       verifier=list(results)))
        click.echo(f"ktstr: wrote {html_file}", err=True)
    if exit_zero:
        return
    if any(r.outcome is Verdict.FAIL for r in results):
        sys.exit(EXIT_FAIL)
    if any(r.outcome is Verdict.ERROR for r in results):
        sys.exit(EXIT_ERROR)


@verifier.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--threshold", type=float, default=10.0, show_default=True, metavar="PCT",
              help="Flag a program whose verified instructions grew by more than PCT %.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when regressions are flagged.")
def diff(old: Path, new: Path, threshold: float, exit_zero: bool) -> None:
    """Per-program verified-instruction deltas from OLD to NEW (--json files).

    Regressions: growth over the threshold, a program that now fails verification, or
    one newly over 75 % of the instruction limit. Exit code 1 when any is flagged.
    """
    from ktstr.sweep.report import diff_sweeps, render_diff
    from ktstr.sweep.runner import read_summary

    _, a = read_summary(old)
    _, b = read_summary(new)
    deltas = diff_sweeps(a, b, threshold_pct=threshold)
    click.echo(render_diff(deltas))
    if not exit_zero and any(d.regression for d in deltas):
        sys.exit(EXIT_FAIL)
