"""``ktstr schedulers ...``: build and list the kernel's example sched_ext schedulers."""

from __future__ import annotations

import click

from ktstr.cli.app import App
from ktstr.cli.kernel import EchoProgress
from ktstr.cli.output import table


@click.group("schedulers")
def schedulers() -> None:
    """The kernel's example sched_ext schedulers (scx_simple, scx_qmap, ...), built from
    Debian's linux-source-X.Y and cached per source version.

    \b
    Cache: $KTSTR_CACHE_DIR/schedulers/<source-version>/{bin,obj}
    A scheduler binary is found through $KTSTR_SCHEDULER (a binary or a directory), then
    the build of the kernel's series, then $PATH.
    """


@schedulers.command("build")
@click.option("--series", metavar="X.Y", help="Source series to build (default: the series of "
              "--kernel, else of the newest cached sched_ext kernel, else 7.2).")
@click.option("--kernel", "kernel_spec", metavar="SPEC",
              help="Kernel to take BTF from (default: the kernel of the source's version, "
              "fetched if needed). A kernel from `ktstr kernel build` (its key) builds the "
              "examples of its own source tree against its BTF, cached per kernel under "
              "schedulers/by-kernel/KEY.")
@click.option("--force", is_flag=True, help="Rebuild even if this source version is built.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Parallel make jobs.")
def build(series: str | None, kernel_spec: str | None, force: bool, jobs: int) -> None:
    """Fetch linux-source-X.Y, build the examples, bpftool and veristat with clang-22,
    and cache binaries plus their .bpf.o objects."""
    from ktstr.schedbin.build import Toolchain
    from ktstr.schedbin.builder import Builder

    builder = Builder(progress=EchoProgress(), toolchain=Toolchain(jobs=jobs))
    result = builder.build_series(series, kernel_spec, force=force)
    click.echo(f"source {result.source_version} ({result.debian_version}), BTF from "
               f"{result.btf_kernel}, {result.clang}")
    click.echo(f"binaries: {result.bin_dir}")
    click.echo(f"objects:  {result.obj_dir}")
    click.echo(f"schedulers: {' '.join(result.schedulers)}")


@schedulers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with all paths).")
def list_builds(as_json: bool) -> None:
    """Cached scheduler builds: source version, compiler, schedulers."""
    from ktstr.schedbin.cache import SchedulerCache

    builds = SchedulerCache().builds()
    if as_json:
        App.echo_json([b.summary() for b in builds])
        return
    if not builds:
        click.echo("no scheduler builds cached; run: ktstr schedulers build --series 7.2")
        return
    rows = [(b.source_version, b.series, b.btf_kernel, b.clang.split(" (")[0],
             " ".join(b.schedulers), str(b.entry_dir)) for b in builds]
    click.echo(table(["SOURCE", "SERIES", "BTF KERNEL", "CLANG", "SCHEDULERS", "PATH"], rows))
