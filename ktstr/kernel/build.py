"""``ktstr kernel build``: a kernel source tree (or Debian's linux-source) -> a cached kernel.

Pipeline (each step reported through ``Progress``):

1. the source: a tree given by path, or ``7.2`` = Debian's ``linux-source-7.2`` tarball,
   fully extracted once into the source cache (``schedbin.source.SourceTrees``);
2. its identity (``srcid``) and the merged config: ``kernels/ktstr.config`` then each
   ``--config`` fragment, later wins (``kconfig``);
3. the cache key ``VERSION+build-SRC-CFG``: an entry with that key is a hit, no make;
4. the out-of-tree build directory ``CACHE/kbuild/TREE-WHERE-CFG`` (locked): ``make
   allnoconfig`` with ``KCONFIG_ALLCONFIG`` = the merged fragment, ``make olddefconfig``,
   the report of every fragment option that did not survive, then ``make bzImage`` under
   ``nice`` with a progress line every few seconds (the full log is ``build.log`` there);
5. the image, ``.config`` and ``System.map`` are installed as a kernel cache entry
   (``source: tree``) with a ``build.json`` record next to its metadata.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pydantic import ValidationError

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.kernel.archive import ArchiveIndex
from ktstr.kernel.builddeps import check_build_deps
from ktstr.kernel.cache import CachedKernel, KernelCache, KernelSource, finish_entry
from ktstr.kernel.id import is_version, normalize_version
from ktstr.kernel.kconfig import (
    DroppedOption,
    Fragment,
    kconfig_symbols,
    merge_fragments,
    parse_fragment,
)
from ktstr.kernel.kconfig import dropped_options as find_dropped
from ktstr.kernel.locking import file_lock
from ktstr.kernel.pahole import choose_pahole
from ktstr.kernel.progress import NullProgress, Progress
from ktstr.kernel.srcid import SourceIdentity, build_dir_name, build_key, identify
from ktstr.resources import package_path

log = logging.getLogger(__name__)

BASE_FRAGMENT = "ktstr.config"
BUILD_RECORD = "build.json"
IMAGE_TARGET = "bzImage"
#: niceness of the compiler processes, so VMs of other users of the host keep running
NICENESS = 10
#: seconds between progress lines while make runs
PROGRESS_EVERY_S = 10.0


def kernels_fragment_dir() -> Path:
    """The base config fragments shipped with the package (``ktstr/kernels/``)."""
    return package_path("ktstr", "kernels")


def base_fragment() -> Fragment:
    path = kernels_fragment_dir() / BASE_FRAGMENT
    return parse_fragment(path.read_text(), f"kernels/{BASE_FRAGMENT}")


def kbuild_dir() -> Path:
    return paths.cache_root() / "kbuild"


# --- pure command lines -------------------------------------------------------------------

def make_base(tree: Path, out: Path, pahole: Path | None = None) -> list[str]:
    """``make`` in ``tree`` building into ``out``; ``PAHOLE=`` when not the host's (Kconfig
    reads its version too, so configuring needs it as well as building)."""
    argv = ["make", "-C", str(tree), f"O={out}", "ARCH=x86_64"]
    return [*argv, f"PAHOLE={pahole}"] if pahole is not None else argv


def configure_argvs(tree: Path, out: Path, allconfig: Path,
                    pahole: Path | None = None) -> list[list[str]]:
    """``allnoconfig`` seeded with the merged fragment, then ``olddefconfig``."""
    return [[*make_base(tree, out, pahole), f"KCONFIG_ALLCONFIG={allconfig}", "allnoconfig"],
            [*make_base(tree, out, pahole), "olddefconfig"]]


def build_argv(tree: Path, out: Path, jobs: int, niceness: int = NICENESS,
               pahole: Path | None = None) -> list[str]:
    return ["nice", "-n", str(niceness), *make_base(tree, out, pahole), f"-j{jobs}",
            IMAGE_TARGET]


def toolchain_text(pahole: Path | None) -> str:
    """What of the toolchain a build's key depends on: the compiler and pahole versions."""
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False)
    ph = subprocess.run([str(pahole) if pahole else "pahole", "--version"],
                        capture_output=True, text=True, check=False)
    first = gcc.stdout.splitlines()[0] if gcc.stdout else "gcc ?"
    return f"{first}; pahole {ph.stdout.strip() or '?'}"


TOOLCHAIN_FILE = "ktstr-toolchain.txt"
LINKED_IMAGES = ("vmlinux", "vmlinux.unstripped", "vmlinux.o")


def relink_if_toolchain_changed(out: Path, toolchain: str, progress: Progress) -> None:
    """pahole runs only when ``vmlinux`` is linked, and make does not see a new pahole
    (nor does it relink for one): after a toolchain change, drop ``vmlinux`` so that the
    link, BTF generation and ``resolve_btfids`` run again."""
    marker = out / TOOLCHAIN_FILE
    before = marker.read_text().strip() if marker.is_file() else None
    # 7.x links vmlinux.unstripped (pahole, resolve_btfids) and copies it to vmlinux
    linked = [p for p in (out / n for n in LINKED_IMAGES) if p.exists()]
    if linked and before != toolchain:
        progress.step(f"toolchain changed ({before or 'unknown'} -> {toolchain}): relinking "
                      "vmlinux to regenerate its BTF")
        for p in linked:
            p.unlink()


def keyed_config_digest(config_digest: str, toolchain: str) -> str:
    """The config part of a kernel's cache key: the merged config and the toolchain."""
    return hashlib.sha256(f"{config_digest}\0{toolchain}".encode()).hexdigest()


# --- progress from kbuild's quiet output ------------------------------------------------

_KBUILD = re.compile(r"^  ([A-Z][A-Z0-9_]*(?: \[[A-Z]+\])?)\s+(\S.*)$")


class KbuildStep(Frozen):
    action: str
    target: str


def parse_kbuild_line(line: str) -> KbuildStep | None:
    """``  CC      kernel/sched/core.o`` -> ``KbuildStep("CC", "kernel/sched/core.o")``."""
    m = _KBUILD.match(line.rstrip("\n"))
    return KbuildStep(action=m.group(1), target=m.group(2).strip()) if m else None


class BuildTally:
    """Counts kbuild steps as make prints them."""

    def __init__(self, strip: str = "") -> None:
        #: a prefix removed from targets (the build directory, in tools/ steps)
        self.strip = strip
        self.compiled = 0
        self.steps = 0
        self.last: KbuildStep | None = None

    def feed(self, line: str) -> KbuildStep | None:
        step = parse_kbuild_line(line)
        if step is not None and self.strip and step.target.startswith(self.strip):
            step = step.model_copy(update={"target": step.target[len(self.strip):]})
        if step is not None:
            self.steps += 1
            if step.action == "CC":
                self.compiled += 1
            self.last = step
        return step

    def summary(self, elapsed_s: float) -> str:
        now = f"; {self.last.action} {self.last.target}" if self.last else ""
        return (f"make: {elapsed_s // 60:.0f}m{elapsed_s % 60:02.0f}s, {self.compiled} C files "
                f"compiled, {self.steps} steps{now}")


@contextlib.contextmanager
def running(argv: Sequence[str], log_file: Path) -> Iterator[subprocess.Popen[str]]:
    """Start ``argv`` in its own process group with stdout+stderr piped; on leaving the
    block (an error, Ctrl-C) a still-running group is killed and reaped."""
    with log_file.open("a") as logf:
        logf.write(f"\n$ {' '.join(argv)}\n")
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True,
                                env={**os.environ, "LC_ALL": "C"})
    except OSError as exc:
        raise InfraError(f"step {argv[0]!r} could not start: {exc}") from exc
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def run_logged(argv: Sequence[str], step: str, log_file: Path,
               on_line: Callable[[str], None] | None = None) -> None:
    """Run one step, appending its output to ``log_file``; ``InfraError`` with the log's
    tail when it fails."""
    with running(argv, log_file) as proc, log_file.open("a") as logf:
        assert proc.stdout is not None
        for line in proc.stdout:
            logf.write(line)
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    if code != 0:
        tail = "\n  ".join(log_file.read_text(errors="replace").strip().splitlines()[-20:])
        raise InfraError(f"kernel build step {step!r} failed (exit {code}); full log "
                         f"{log_file}:\n  {tail}")


# --- records ------------------------------------------------------------------------------

class BuildRecord(Frozen):
    """``build.json`` beside a built kernel's metadata: how it was made."""

    key: str
    source: SourceIdentity
    fragments: list[str]
    config_sha256: str
    toolchain: str = ""
    dropped: list[DroppedOption] = []
    build_dir: Path
    jobs: int
    make_seconds: float
    built_at: dt.datetime


def read_record(kernel: CachedKernel) -> BuildRecord | None:
    path = kernel.entry_dir / BUILD_RECORD
    try:
        return BuildRecord.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


class BuildResult(Frozen):
    kernel: CachedKernel
    record: BuildRecord
    #: the entry already existed: nothing was configured or compiled
    cache_hit: bool


class SourceSpec(Frozen):
    """Where the source comes from: a tree, or a Debian ``linux-source`` series."""

    tree: Path
    package: str | None = None


def tree_symbols(tree: Path) -> frozenset[str]:
    """The Kconfig symbols a tree defines (every ``Kconfig*`` file; about a second)."""
    texts = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        texts += [Path(dirpath, n).read_text(errors="replace") for n in filenames
                  if n.startswith("Kconfig")]
    return kconfig_symbols(texts)


def fragment_from_file(path: Path) -> Fragment:
    p = path.expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise UserError(f"cannot read config fragment {path}: {exc.strerror}") from exc
    return parse_fragment(text, str(path))


class KernelBuilder:
    """Builds kernels into ``cache`` with build directories under ``build_root``."""

    def __init__(self, *, cache: KernelCache | None = None, build_root: Path | None = None,
                 progress: Progress | None = None,
                 resolve_series: Callable[[str], SourceSpec] | None = None,
                 pahole: Path | None = None,
                 archive_factory: Callable[[], ArchiveIndex] | None = None) -> None:
        self.cache = cache or KernelCache()
        self.pahole_override = pahole
        self.archive_factory = archive_factory
        self.build_root = build_root or kbuild_dir()
        self.progress: Progress = progress or NullProgress()
        self._resolve_series = resolve_series or self._debian_source

    def _debian_source(self, series: str) -> SourceSpec:
        from ktstr.kernel.archive import PrivateApt
        from ktstr.schedbin.source import SourceTrees, latest_source

        archive = PrivateApt()
        self.progress.step(f"finding linux-source-{series}")
        release = latest_source(archive, series)
        tree = SourceTrees().ensure_full(release, archive, self.progress)
        return SourceSpec(tree=tree, package=release.package_version().ref)

    def source(self, spec: str) -> SourceSpec:
        if is_version(spec) and not Path(spec).exists():
            version = normalize_version(spec)
            if version.count(".") != 1 or "-rc" in version:
                raise UserError(f"{spec!r}: give a series such as 7.2 (Debian ships one "
                                "linux-source per series), or a source tree path")
            return self._resolve_series(version)
        return SourceSpec(tree=Path(spec))

    def build(self, spec: str, fragments: Sequence[Path] = (), *, jobs: int | None = None,
              force: bool = False, strict: bool = False) -> BuildResult:
        src = self.source(spec)
        identity = identify(src.tree, package=src.package)
        parsed = [base_fragment(), *(fragment_from_file(f) for f in fragments)]
        merged = merge_fragments(parsed)
        for r in merged.redefinitions:
            self.progress.step(f"CONFIG_{r.name}: {r.old.value} ({r.old.origin}) overridden "
                               f"by {r.new.value} ({r.new.origin})")
        pahole = choose_pahole(identity.root, self.archive_factory, self.progress,
                               self.pahole_override)
        toolchain = toolchain_text(pahole)
        key = build_key(identity, keyed_config_digest(merged.digest, toolchain))
        self.progress.step(f"source {identity.describe()}, version {identity.version}; "
                           f"config {merged.digest[:10]}; {toolchain}; kernel key {key}")
        if not force and (hit := self._hit(key)) is not None:
            return hit
        check_build_deps(identity.root)
        out = self.build_root / build_dir_name(identity.root, merged.digest)
        jobs = jobs or os.cpu_count() or 1
        with file_lock(self.build_root / ".locks" / f"{out.name}.lock",
                       what=f"kernel build {out.name}"):
            # a concurrent build of the same source and config may have finished
            if not force and (hit := self._hit(key)) is not None:
                return hit
            out.mkdir(parents=True, exist_ok=True)
            log_file = out / "build.log"
            log_file.write_text(f"# ktstr kernel build {spec} -> {key}\n")
            allconfig = out / "ktstr-fragment.config"
            allconfig.write_text(merged.render())
            self.progress.step(f"configuring in {out} (allnoconfig + {len(parsed)} "
                               "fragment(s), olddefconfig)")
            for argv in configure_argvs(identity.root, out, allconfig, pahole):
                run_logged(argv, argv[-1], log_file)
            config_text = (out / ".config").read_text(errors="replace")
            dropped = find_dropped(merged, config_text, tree_symbols(identity.root))
            for d in dropped:
                self.progress.step(f"dropped: {d.describe()}")
            if dropped and strict:
                raise UserError(f"{len(dropped)} config option(s) did not survive "
                                "olddefconfig (listed above); fix the fragments or drop "
                                "--strict")
            relink_if_toolchain_changed(out, toolchain, self.progress)
            make_s = self._make(identity.root, out, jobs, log_file, pahole)
            (out / TOOLCHAIN_FILE).write_text(toolchain + "\n")
            record = BuildRecord(key=key, source=identity,
                                 fragments=[f.source for f in parsed],
                                 config_sha256=merged.digest, toolchain=toolchain,
                                 dropped=dropped, build_dir=out,
                                 jobs=jobs, make_seconds=round(make_s, 1),
                                 built_at=dt.datetime.now(dt.UTC))
            if force:  # only now that the new image exists
                self.cache.remove(key)
            kernel = self.cache.ensure(key, lambda tmp: self._install(out, record, tmp))
        self.progress.step(f"{key}: cached ({kernel.image_path}, sched_ext "
                           f"{'yes' if kernel.sched_ext else 'no'}, BTF "
                           f"{'yes' if kernel.config_facts.btf else 'no'})")
        return BuildResult(kernel=kernel, record=record, cache_hit=False)

    def _hit(self, key: str) -> BuildResult | None:
        found = self.cache.get(key)
        record = read_record(found) if found is not None else None
        if found is None or record is None:
            return None
        self.progress.step(f"{key}: already built (cache hit, {found.entry_dir})")
        return BuildResult(kernel=found, record=record, cache_hit=True)

    def _make(self, tree: Path, out: Path, jobs: int, log_file: Path,
              pahole: Path | None) -> float:
        argv = build_argv(tree, out, jobs, pahole=pahole)
        self.progress.step(f"building {IMAGE_TARGET} (-j{jobs}, nice {NICENESS}); "
                           f"log {log_file}")
        tally = BuildTally(strip=f"{out}/")
        started = time.monotonic()
        last = started

        def on_line(line: str) -> None:
            nonlocal last
            tally.feed(line)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                last = now
                self.progress.step(tally.summary(now - started))

        run_logged(argv, f"make {IMAGE_TARGET}", log_file, on_line)
        elapsed = time.monotonic() - started
        self.progress.step(f"{tally.summary(elapsed)} (done)")
        return elapsed

    def _install(self, out: Path, record: BuildRecord, tmp: Path) -> CachedKernel:
        image = out / "arch" / "x86" / "boot" / IMAGE_TARGET
        if not image.is_file():
            raise InfraError(f"make finished but {image} is missing")
        shutil.copy2(image, tmp / "vmlinuz")
        shutil.copy2(out / ".config", tmp / "config")
        names: dict[str, object] = {"image": "vmlinuz", "config": "config"}
        if (out / "System.map").is_file():
            shutil.copy2(out / "System.map", tmp / "System.map")
            names["system_map"] = "System.map"
        release_file = out / "include" / "config" / "kernel.release"
        release = release_file.read_text().strip() if release_file.is_file() else None
        (tmp / BUILD_RECORD).write_text(record.model_dump_json(indent=2) + "\n")
        return finish_entry(tmp, **names, key=record.key, version=record.source.version,
                            release=release, source=KernelSource.TREE,
                            origin=str(record.source.root))

