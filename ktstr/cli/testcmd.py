"""``ktstr test`` (pytest with kernels resolved first) and ``ktstr gauntlet``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest

from ktstr.cli.app import App, pass_app
from ktstr.cli.options import cold_boot_option


def _resolve(kernels: tuple[str, ...]) -> None:
    from ktstr.kernel.resolve import resolve_kernel

    for spec in kernels or (None,):
        k = resolve_kernel(spec)
        click.echo(f"ktstr: kernel {spec or '(default)'} -> {k.release or k.version} "
                   f"(sched_ext {'yes' if k.sched_ext else 'no'})", err=True)


def _kernel_args(kernels: tuple[str, ...]) -> list[str]:
    return [a for k in kernels for a in ("--ktstr-kernel", k)]


@click.command("test", context_settings={"ignore_unknown_options": True,
                                         "allow_extra_args": True})
@click.option("--kernel", "kernels", multiple=True, metavar="SPEC",
              help="Kernel for every @ktstr_test (repeatable; fetched if needed).")
@cold_boot_option
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test(kernels: tuple[str, ...], pytest_args: tuple[str, ...]) -> None:
    """Run pytest with the ktstr plugin, resolving (and fetching) the kernels first.

    Everything after the options goes to pytest, e.g.
    ``ktstr test --kernel 7.2 tests/ -n 2 -k two_cgroups``.
    """
    _resolve(kernels)
    sys.exit(int(pytest.main([*pytest_args, *_kernel_args(kernels)])))


class _Collector:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


@click.command("gauntlet")
@click.option("-k", "keyword", default=None, metavar="EXPR", help="pytest -k expression.")
@click.option("--kernel", "kernels", multiple=True, metavar="SPEC", help="Kernel (repeatable).")
@click.option("--preset", "presets", multiple=True, metavar="NAME",
              help="Only these presets (repeatable).")
@click.option("--budget-s", type=float, default=None, metavar="S",
              help="Time budget: run the subset covering the most distinct configurations "
              "(scheduler, flags, kernel, CPU/LLC/NUMA buckets, SMT) per estimated second.")
@click.option("--list", "list_only", is_flag=True, help="Print the variants, run nothing.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("ktstr-results"), show_default=True,
              help="Where the sidecar JSON files go (--ktstr-results).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write an HTML report with the gauntlet matrix "
              "(preset x flags x kernel, coloured by verdict; needs ktstr[compare]).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Variants run at once (pytest-xdist workers). Default: as many as the "
              "host's CPUs, at most one per variant; each VM still waits for its CPU "
              "tokens (--ktstr-cpu-budget), so parallel VMs never oversubscribe the host.")
@cold_boot_option
@click.option("--no-repro", is_flag=True,
              help="Do not rerun a failed variant with a scheduling trace (--ktstr-no-repro).")
@click.argument("paths", nargs=-1)
@pass_app
def gauntlet(app: App, keyword: str | None, kernels: tuple[str, ...],
             presets: tuple[str, ...], budget_s: float | None, list_only: bool,
             results_dir: Path, html_file: Path | None, jobs: int | None,
             no_repro: bool,
             paths: tuple[str, ...]) -> None:
    """Run @ktstr_test tests across accepted presets x flag profiles x kernels."""
    from ktstr.declare.presets import preset
    from ktstr.testkit.budget_select import Candidate, cost, select
    from ktstr.testkit.spec import spec_of

    if html_file is not None:
        from ktstr.cli.compare import need_compare_extra

        need_compare_extra()
    for name in presets:
        preset(name)  # unknown names fail here, listing the known ones
    _resolve(kernels)
    base = [*paths, "--ktstr-gauntlet", *_kernel_args(kernels), "-p", "no:cacheprovider"]
    if keyword:
        base += ["-k", keyword]
    if no_repro:
        base += ["--ktstr-no-repro"]
    collector = _Collector()
    code = pytest.main([*base, "--collect-only", "-qq"], plugins=[collector])
    if code not in (0, 5):
        sys.exit(int(code))
    cands: list[Candidate] = []
    for item in collector.items:
        spec = spec_of(getattr(item, "function", None))
        variant = getattr(item, "callspec", None)
        v = variant.params.get("ktstr_variant") if variant else None
        if spec is None or v is None or (presets and v.preset not in presets):
            continue
        cands.append(Candidate(nodeid=item.nodeid, scheduler=spec.scheduler.name,
                               flags=v.flags.name, kernel=v.kernel.label,
                               topology=v.topology, duration_s=spec.duration_s))
    if not cands:
        raise click.ClickException("no @ktstr_test variants matched")
    picked = cands
    if budget_s is not None:
        picked, covered = select(cands, budget_s)
        est = sum(cost(c) for c in picked)
        click.echo(f"ktstr: budget {budget_s:g} s: {len(picked)} of {len(cands)} variants "
                   f"(estimated {est:.0f} s) cover {len(covered)} configurations:", err=True)
        click.echo("  " + ", ".join(sorted(covered)), err=True)
    for c in picked:
        click.echo(c.nodeid)
    if list_only:
        return
    started = time.time()
    workers = gauntlet_jobs(jobs, len(picked))
    parallel = ["-n", str(workers)] if workers > 1 else []
    if workers > 1:
        click.echo(f"ktstr: {len(picked)} variants, {workers} at a time", err=True)
    code = int(pytest.main([*[c.nodeid for c in picked], *base[len(paths):], *parallel,
                            f"--ktstr-results={results_dir}"]))
    if html_file is not None:
        write_gauntlet_html(html_file, results_dir, since=started)
    sys.exit(code)


def gauntlet_jobs(requested: int | None, variants: int) -> int:
    """How many variants run at once: as asked, else one per host CPU (at most one per
    variant); 1 without pytest-xdist."""
    import importlib.util

    if importlib.util.find_spec("xdist") is None:
        return 1
    if requested is not None:
        return min(requested, max(1, variants))
    return max(1, min(len(os.sched_getaffinity(0)), variants))


def write_gauntlet_html(html_file: Path, results_dir: Path, *, since: float) -> None:
    """The gauntlet matrix of the sidecars written since ``since``."""
    from ktstr.results.html import Report, write_report
    from ktstr.testkit.sidecar import read_sidecars

    sidecars = [s.to_json() for s in read_sidecars(results_dir.resolve(), since=since)]
    write_report(html_file, Report(title="ktstr gauntlet", sources=[str(results_dir)],
                                   sidecars=sidecars))
    click.echo(f"ktstr: wrote {html_file}", err=True)
