"""``ktstr test`` (pytest with kernels resolved first) and ``ktstr gauntlet``."""

from __future__ import annotations

import sys
from typing import Any

import click
import pytest

from ktstr.cli.app import App, pass_app


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
@click.argument("paths", nargs=-1)
@pass_app
def gauntlet(app: App, keyword: str | None, kernels: tuple[str, ...],
             presets: tuple[str, ...], budget_s: float | None, list_only: bool,
             paths: tuple[str, ...]) -> None:
    """Run @ktstr_test tests across accepted presets x flag profiles x kernels."""
    from ktstr.declare.presets import preset
    from ktstr.testkit.budget_select import Candidate, cost, select
    from ktstr.testkit.decorator import spec_of

    for name in presets:
        preset(name)  # unknown names fail here, listing the known ones
    _resolve(kernels)
    base = [*paths, "--ktstr-gauntlet", *_kernel_args(kernels), "-p", "no:cacheprovider"]
    if keyword:
        base += ["-k", keyword]
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
    sys.exit(int(pytest.main([*[c.nodeid for c in picked], *base[len(paths):]])))
