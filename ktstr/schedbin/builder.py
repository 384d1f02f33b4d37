"""``build_series``: source + BTF kernel + toolchain -> a cached ``SchedulerBuild``.

Steps (each reported through ``Progress``): pick the newest ``linux-source-X.Y``; get a
cached kernel of that series for its BTF (the same upstream version as the source when
the archive has it, else the newest of the series); extract the source tree (cached);
``extract-vmlinux``; ``make -C tools/sched_ext``; compile veristat; copy binaries, bpftool,
veristat and the linked ``.bpf.o`` objects into the cache entry.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

from ktstr.errors import UserError
from ktstr.kernel.archive import ArchiveIndex, PrivateApt
from ktstr.kernel.build import BuildRecord, read_record
from ktstr.kernel.cache import CachedKernel, KernelCache
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.progress import NullProgress, Progress
from ktstr.kernel.resolve import default_cached, resolve_kernel
from ktstr.schedbin.build import (
    Toolchain,
    check_toolchain,
    collect,
    extract_vmlinux_argv,
    make_argv,
    run_step,
    strip_debug_argv,
    tool_version,
    veristat_argv,
)
from ktstr.schedbin.cache import BUILD_RECIPE, SchedulerBuild, SchedulerCache
from ktstr.schedbin.discover import series_of
from ktstr.schedbin.source import SourceRelease, SourceTrees, latest_source

log = logging.getLogger(__name__)

DEFAULT_SERIES = "7.2"
#: under the scheduler cache: builds for one built kernel (no metadata.json at this level,
#: so series lookups skip the directory)
PER_KERNEL_DIR = "by-kernel"


def default_series(kernels: KernelCache) -> str:
    """The series of the newest cached sched_ext kernel, else ``DEFAULT_SERIES``."""
    newest = default_cached(kernels)
    return series_of(newest.version) if newest else DEFAULT_SERIES


def per_kernel_cache(cache: SchedulerCache) -> SchedulerCache:
    """Scheduler builds made for one built kernel, keyed by its cache key."""
    return SchedulerCache(cache.root / PER_KERNEL_DIR)


def btf_kernel(release: SourceRelease, fetcher: Fetcher) -> CachedKernel:
    """A kernel of the source's series to take BTF from, fetched if needed."""
    try:
        found = resolve_kernel(release.version, fetcher=fetcher)
    except UserError:
        log.info("no kernel %s in the archive; using the newest %s.x", release.version,
                 release.series)
        found = resolve_kernel(release.series, fetcher=fetcher)
    return found


class Builder:
    def __init__(self, *, archive: ArchiveIndex | None = None,
                 kernels: KernelCache | None = None, cache: SchedulerCache | None = None,
                 trees: SourceTrees | None = None, toolchain: Toolchain | None = None,
                 progress: Progress | None = None) -> None:
        self.archive = archive or PrivateApt()
        self.progress: Progress = progress or NullProgress()
        self.fetcher = Fetcher(kernels, self.archive, progress=self.progress)
        self.cache = cache or SchedulerCache()
        self.trees = trees or SourceTrees()
        self.toolchain = toolchain or Toolchain()

    def build_series(self, series: str | None = None, kernel: str | None = None, *,
                     force: bool = False) -> SchedulerBuild:
        """Build (or reuse) the schedulers for ``series``; ``kernel`` picks the BTF kernel
        and, without ``series``, the series too."""
        chosen_kernel = resolve_kernel(kernel, fetcher=self.fetcher) if kernel else None
        if chosen_kernel is not None and (record := read_record(chosen_kernel)) is not None:
            return self.build_for_built(chosen_kernel, record, force=force)
        if series is None:
            series = (series_of(chosen_kernel.version) if chosen_kernel
                      else default_series(self.fetcher.cache))
        if chosen_kernel is not None and series_of(chosen_kernel.version) != series:
            raise UserError(f"--kernel {kernel} is {chosen_kernel.version}, not of series "
                            f"{series}: build from the source that matches the kernel")
        self.progress.step(f"finding linux-source-{series}")
        release = latest_source(self.archive, series)
        done = self.cache.get(release.version)
        if not force and done is not None and not done.stale:
            self.progress.step(f"schedulers for {release.version} already built: "
                               f"{done.entry_dir}")
            return done
        if done is not None and done.stale and not force:
            self.progress.step(f"schedulers for {release.version} were built by an older "
                               f"recipe ({done.recipe} < {BUILD_RECIPE}): building again")
        check_toolchain(self.toolchain)
        btf = chosen_kernel or btf_kernel(release, self.fetcher)
        if not btf.config_facts.btf:
            raise UserError(f"kernel {btf.key} has no CONFIG_DEBUG_INFO_BTF: pick a kernel "
                            "with BTF (--kernel)")
        tree = self.trees.ensure(release, self.archive, self.progress)
        return self.cache.ensure(release.version,
                                 lambda tmp: self._build(release, tree, btf, tmp), force=force)

    def build_for_built(self, kernel: CachedKernel, record: BuildRecord, *,
                        force: bool = False) -> SchedulerBuild:
        """The examples of a kernel built by ``ktstr kernel build``: from that kernel's own
        source tree (a patched ``tools/sched_ext`` is what gets built) against its BTF,
        cached per kernel key under ``schedulers/by-kernel/`` (series lookups never see
        them: point ``$KTSTR_SCHEDULER`` at the ``bin`` directory to use them)."""
        tree = record.source.root
        if not (tree / "tools" / "sched_ext").is_dir():
            raise UserError(f"kernel {kernel.key} was built from {tree}, which has no "
                            "tools/sched_ext any more")
        if not kernel.config_facts.btf:
            raise UserError(f"kernel {kernel.key} has no CONFIG_DEBUG_INFO_BTF")
        check_toolchain(self.toolchain)
        series = series_of(kernel.version)
        release = SourceRelease(series=series, version=kernel.version,
                                debian_version=record.source.package
                                or (record.source.commit or "tree")[:12],
                                suite="local")
        cache = per_kernel_cache(self.cache)
        self.progress.step(f"building the examples of {tree} against {kernel.key}")
        return cache.ensure(kernel.key, lambda tmp: self._build(release, tree, kernel, tmp),
                            force=force)

    def _build(self, release: SourceRelease, tree: Path, btf: CachedKernel,
               tmp: Path) -> SchedulerBuild:
        work = tmp / "_work"
        work.mkdir()
        log_file = tmp / "build.log"
        vmlinux = work / "vmlinux"
        self.progress.step(f"extracting BTF from {btf.key}")
        run_step(extract_vmlinux_argv(tree, btf.image_path), "extract-vmlinux", log_file,
                 stdout_to=vmlinux)
        started = time.monotonic()
        self.progress.step(f"building the sched_ext examples with {self.toolchain.clang} "
                           f"(-j{self.toolchain.jobs}; log {log_file.name})")
        out = work / "out"
        out.mkdir()
        run_step(make_argv(tree, out, vmlinux, self.toolchain), "make tools/sched_ext",
                 log_file)
        self.progress.step(f"built in {time.monotonic() - started:.0f}s; compiling veristat")
        veristat = work / "veristat"
        run_step(veristat_argv(tree, out, veristat), "gcc veristat", log_file)
        schedulers, tools = collect(out, tmp, veristat)
        run_step(strip_debug_argv(self.toolchain, [tmp / "bin" / n for n in schedulers + tools]),
                 "llvm-strip --strip-debug", log_file)
        shutil.rmtree(work)
        self.progress.step(f"schedulers: {', '.join(schedulers)}")
        return SchedulerBuild(
            source_version=release.version, series=release.series,
            debian_version=release.debian_version, source_package=release.package,
            btf_kernel=btf.key, clang=tool_version([self.toolchain.clang, "--version"]),
            schedulers=schedulers, tools=tools, built_at=dt.datetime.now(dt.UTC),
            recipe=BUILD_RECIPE, entry_dir=tmp,
        )

