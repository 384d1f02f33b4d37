"""``ktstr kernel ...``: fetch, list, locate and clean cached kernels."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from ktstr.cli.app import App
from ktstr.cli.output import table

if TYPE_CHECKING:
    from ktstr.kernel.cache import CachedKernel
    from ktstr.kernel.fetch import Fetcher

_FLAVOURS = ["amd64", "cloud-amd64"]


class EchoProgress:
    """Step lines and throttled byte counts on stderr."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def step(self, message: str) -> None:
        click.echo(f"[ktstr] {message}", err=True)

    def transfer(self, label: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and (now - self._last.get(label, 0.0) < 2.0
                             or (done == 0 and label in self._last)):
            return
        self._last[label] = now
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        size = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f}" if total else "")
        click.echo(f"[ktstr]   {size} MB{pct}", err=True)


def _fetcher(flavour: str) -> Fetcher:
    from ktstr.kernel.fetch import Fetcher
    from ktstr.kernel.packages import Flavour

    return Fetcher(flavour=Flavour(flavour), progress=EchoProgress())


def _row(k: CachedKernel) -> tuple[str, ...]:
    return (k.key, k.version, k.source.value + (f" ({k.suite})" if k.suite else ""),
            "yes" if k.sched_ext else "no", "yes" if k.config_facts.btf else "no",
            f"{k.size_bytes / 1e6:.0f} MB")


_flavour = click.option("--flavour", type=click.Choice(_FLAVOURS), default="amd64",
                        show_default=True,
                        help="Debian kernel flavour (cloud-amd64 has no 9p).")


@click.group("kernel")
def kernel() -> None:
    """Real kernels: fetch Debian kernels or register local builds, in a shared cache.

    \b
    Specs:  7.2        newest 7.2.x the archive offers
            7.2.13     exactly that version        7.3-rc7   a release candidate
            7.2..=7.3  every available version in the range
            PATH       a bzImage/vmlinuz (config beside it) or a built kernel tree
            KEY        an entry already in the cache (see `ktstr kernel list`)
    Cache: $KTSTR_CACHE_DIR/kernels, else $XDG_CACHE_HOME/ktstr/kernels, else
    ~/.cache/ktstr/kernels. Commands that need one kernel use --kernel, else $KTSTR_KERNEL,
    else the newest cached kernel with sched_ext.
    """


@kernel.command("fetch")
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@_flavour
def fetch(specs: tuple[str, ...], flavour: str) -> None:
    """Resolve SPECs and cache the kernels (reusing entries already cached).

    Debian kernels come through a private apt configuration under the cache (the system's
    apt is never changed); the archive lists are refreshed when older than
    $KTSTR_APT_MAX_AGE_HOURS (default 24).
    """
    fetcher = _fetcher(flavour)
    rows = []
    for spec in specs:
        rows += [_row(k) for k in fetcher.fetch(spec)]
    click.echo(table(["KEY", "VERSION", "SOURCE", "SCHED_EXT", "BTF", "SIZE"], rows))


@kernel.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (full metadata and paths).")
@click.option("--available", is_flag=True, help="Also list what the archive can fetch.")
@_flavour
def list_kernels(as_json: bool, available: bool, flavour: str) -> None:
    """Cached kernels (version, source, sched_ext yes/no, size); corrupt entries flagged."""
    from ktstr.kernel.cache import EntryState, KernelCache

    statuses = KernelCache().scan()
    offered = _fetcher(flavour).available if available else []
    cached_keys = {s.key for s in statuses}
    if as_json:
        App.echo_json({
            "cached": [s.kernel.summary() if s.kernel and s.state is EntryState.OK else
                       {"key": s.key, "path": str(s.path), "state": s.state.value,
                        "problems": s.problems} for s in statuses],
            "available": [dict(k.model_dump(mode="json"), cached=k.key in cached_keys)
                          for k in offered],
        })
        return
    rows = [_row(s.kernel) if s.kernel and s.state is EntryState.OK else
            (s.key, "?", "CORRUPT: " + "; ".join(s.problems), "-", "-", "-") for s in statuses]
    if rows:
        click.echo(table(["KEY", "VERSION", "SOURCE", "SCHED_EXT", "BTF", "SIZE"], rows))
    else:
        click.echo("no kernels cached; fetch one: ktstr kernel fetch 7.2")
    if available:
        click.echo("")
        click.echo(table(
            ["AVAILABLE", "RELEASE", "DEBIAN VERSION", "SUITE", "CACHED"],
            [(k.version, k.release, k.debian_version, k.suite,
              "yes" if k.key in cached_keys else "") for k in offered]))


@kernel.command("path")
@click.argument("spec")
@click.option("--config", "what", flag_value="config", help="Print the config path instead.")
@click.option("--modules", "what", flag_value="modules", help="Print the module tree instead.")
@click.option("--dir", "what", flag_value="dir", help="Print the entry directory instead.")
def path(spec: str, what: str | None) -> None:
    """Print the image path of SPEC (fetching it if needed), for scripts."""
    from ktstr.errors import UserError
    from ktstr.kernel.resolve import resolve_kernel

    k = resolve_kernel(spec, fetcher=_fetcher("amd64"))
    chosen = {None: k.image_path, "config": k.config_path, "modules": k.modules_dir,
              "dir": k.entry_dir}[what]
    if chosen is None:
        raise UserError(f"kernel {k.key} has no {what}")
    click.echo(str(chosen))


@kernel.command("clean")
@click.argument("spec", required=False)
@click.option("--keep", type=click.IntRange(min=0), default=None,
              help="Keep the N newest entries (of SPEC's matches, or of all).")
@click.option("--corrupt-only", is_flag=True, help="Only remove entries that fail verification.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed.")
@click.option("--build-dirs", is_flag=True,
              help="Only remove the out-of-tree build directories of `ktstr kernel build` "
                   "(kbuild/, ~1.3 GB each; the next build of that tree is cold).")
def clean(spec: str | None, keep: int | None, corrupt_only: bool, dry_run: bool,
          build_dirs: bool) -> None:
    """Remove cached kernels: all, those matching SPEC, or only corrupt ones.

    Leftovers of interrupted fetches are always removed.
    """
    from ktstr.kernel.build import kbuild_dir
    from ktstr.kernel.clean import idle_build_dirs, plan_clean, remove_entries
    from ktstr.kernel.locking import discard_dir

    if build_dirs:
        dirs = idle_build_dirs(kbuild_dir())
        for d in dirs:
            click.echo(f"{'would remove' if dry_run else 'removing'} {d}")
            if not dry_run:
                discard_dir(d)
        if not dirs:
            click.echo("nothing to remove")
        return
    plan = plan_clean(spec=spec, keep=keep, corrupt_only=corrupt_only)
    for p in plan:
        click.echo(f"{'would remove' if dry_run else 'removing'} {p}")
    if not dry_run:
        remove_entries(plan)
    if not plan:
        click.echo("nothing to remove")


@kernel.command("build")
@click.argument("src", metavar="SRC")
@click.option("--config", "fragments", multiple=True, type=click.Path(dir_okay=False),
              metavar="FRAGMENT",
              help="A config fragment merged over kernels/ktstr.config (repeatable; later "
                   "files win).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Parallel compile jobs (default: the host's CPU count).")
@click.option("--force", is_flag=True, help="Rebuild even when the cache has this kernel.")
@click.option("--strict", is_flag=True,
              help="Fail before compiling when a fragment option did not survive.")
@click.option("--pahole", type=click.Path(dir_okay=False, exists=True), default=None,
              help="pahole to use (default: the host's when new enough for the tree's BTF, "
                   "else Debian trixie's, unpacked into the cache).")
@click.option("--json", "as_json", is_flag=True, help="Print the cache entry and build "
              "record as JSON.")
def build(src: str, fragments: tuple[str, ...], jobs: int | None, force: bool, strict: bool,
          pahole: str | None, as_json: bool) -> None:
    """Build a kernel from SRC and cache it (usable by every --kernel).

    \b
    SRC:  PATH   a kernel source tree (git checkout or extracted tarball)
          7.2    Debian's linux-source-7.2 (downloaded and extracted once)
    The base config is kernels/ktstr.config over allnoconfig; each --config fragment is
    merged on top, then olddefconfig, and every fragment option that did not keep its
    value is reported by name. The build runs out of tree under the cache (kbuild/),
    under nice, and is reused by incremental rebuilds of the same tree and config; the
    kernel's cache key is VERSION+build-SOURCE-CONFIG, so building the same source and
    config again is a cache hit.
    """
    from pathlib import Path

    from ktstr.kernel.archive import PrivateApt
    from ktstr.kernel.build import KernelBuilder

    builder = KernelBuilder(progress=EchoProgress(), archive_factory=PrivateApt,
                            pahole=Path(pahole) if pahole else None)
    result = builder.build(
        src, [Path(f) for f in fragments], jobs=jobs, force=force, strict=strict)
    if as_json:
        App.echo_json({"kernel": result.kernel.summary(), "cache_hit": result.cache_hit,
                       "build": result.record.model_dump(mode="json")})
        return
    click.echo(table(["KEY", "VERSION", "SOURCE", "SCHED_EXT", "BTF", "SIZE"],
                     [_row(result.kernel)]))
    if result.record.dropped:
        click.echo(f"\n{len(result.record.dropped)} fragment option(s) did not survive "
                   "olddefconfig:")
        for d in result.record.dropped:
            click.echo(f"  {d.describe()}")
    click.echo(f"\n{'cache hit' if result.cache_hit else 'built'}: use it with "
               f"--kernel {result.kernel.key}")
