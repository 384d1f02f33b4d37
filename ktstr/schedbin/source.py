"""Kernel source trees from Debian's ``linux-source-X.Y``, partially extracted and cached.

Only what the sched_ext examples, bpftool and veristat need is extracted (LAB.md §3):
``tools scripts include arch/x86/include kernel/bpf``. Trees live under
``CACHE/sources/<source-version>/linux-source-X.Y`` and are installed atomically under a
lock, so a rebuild skips the 20-50 s extraction. A kernel build (``ktstr kernel build
7.2``) extracts the whole tarball once into ``CACHE/sources/<source-version>-full/``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.kernel.archive import ArchiveIndex, PackageVersion
from ktstr.kernel.debver import debian_version_key
from ktstr.kernel.extract import extract_debs
from ktstr.kernel.id import sanitize_label, upstream_version
from ktstr.kernel.locking import file_lock, install_dir, staging_dir
from ktstr.kernel.progress import Progress

log = logging.getLogger(__name__)

EXTRACT_PATHS: tuple[str, ...] = ("tools", "scripts", "include", "arch/x86/include",
                                  "kernel/bpf")
SOURCE_PREFIX = "linux-source-"
#: written last into a fully extracted tree (``SourceTrees.ensure_full``)
FULL_MARKER = ".ktstr-complete"


class SourceRelease(Frozen):
    """One version of ``linux-source-X.Y``."""

    series: str
    version: str
    debian_version: str
    suite: str

    @property
    def package(self) -> str:
        return f"{SOURCE_PREFIX}{self.series}"

    @property
    def top(self) -> str:
        """The top directory inside the tarball."""
        return self.package

    def package_version(self) -> PackageVersion:
        return PackageVersion(package=self.package, version=self.debian_version,
                              suite=self.suite)


def pick_source(series: str, versions: Sequence[PackageVersion],
                known_series: Sequence[str] = ()) -> SourceRelease:
    """The newest version of ``linux-source-SERIES``; ``UserError`` listing the series the
    archive has when there is none."""
    mine = [v for v in versions if v.package == f"{SOURCE_PREFIX}{series}"]
    if not mine:
        have = ", ".join(sorted(known_series)) or "(none)"
        raise UserError(f"the archive has no {SOURCE_PREFIX}{series}; source series "
                        f"available: {have}")
    best = max(mine, key=lambda v: debian_version_key(v.version))
    return SourceRelease(series=series, version=upstream_version(best.version),
                         debian_version=best.version, suite=best.suite)


def source_series(names: Sequence[str]) -> list[str]:
    """``linux-source-7.2`` -> ``7.2`` for the versioned source package names."""
    out = []
    for n in names:
        rest = n.removeprefix(SOURCE_PREFIX)
        if rest != n and rest.replace(".", "").isdigit() and rest.count(".") == 1:
            out.append(rest)
    return sorted(out, key=lambda s: tuple(int(x) for x in s.split(".")))


def latest_source(archive: ArchiveIndex, series: str) -> SourceRelease:
    names = archive.package_names(SOURCE_PREFIX)
    return pick_source(series, archive.versions([f"{SOURCE_PREFIX}{series}"]),
                       source_series(names))


def tar_extract_argv(tarball: Path, dest: Path, top: str,
                     members: Sequence[str] = EXTRACT_PATHS) -> list[str]:
    """Extract ``members`` of ``top`` (no members: the whole tarball)."""
    return ["tar", "-xf", str(tarball), "-C", str(dest), *(f"{top}/{m}" for m in members)]


def sources_dir() -> Path:
    return paths.cache_root() / "sources"


class SourceTrees:
    """Cached partial source trees keyed by upstream version."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else sources_dir()

    def tree(self, release: SourceRelease) -> Path:
        return self.root / sanitize_label(release.version) / release.top

    def ensure(self, release: SourceRelease, archive: ArchiveIndex, progress: Progress) -> Path:
        """The extracted tree of ``release``, downloading and extracting it if needed."""
        tree = self.tree(release)
        if (tree / "tools" / "sched_ext").is_dir():
            return tree
        label = sanitize_label(release.version)
        with file_lock(self.root / ".locks" / f"{label}.lock", what=f"source {label}"):
            if (tree / "tools" / "sched_ext").is_dir():
                return tree
            with staging_dir(self.root, label) as tmp:
                self._fill(release, archive, progress, tmp)
                install_dir(tmp, tree.parent)
        return tree

    def full_tree(self, release: SourceRelease) -> Path:
        """Where the whole tarball is extracted (for kernel builds)."""
        return self.root / f"{sanitize_label(release.version)}-full" / release.top

    def ensure_full(self, release: SourceRelease, archive: ArchiveIndex,
                    progress: Progress) -> Path:
        """The whole source tree of ``release`` (``ktstr kernel build 7.2``), extracted once."""
        tree = self.full_tree(release)
        if (tree / FULL_MARKER).is_file():
            return tree
        label = f"{sanitize_label(release.version)}-full"
        with file_lock(self.root / ".locks" / f"{label}.lock", what=f"source {label}"):
            if (tree / FULL_MARKER).is_file():
                return tree
            with staging_dir(self.root, label) as tmp:
                self._fill(release, archive, progress, tmp, members=())
                (tmp / release.top / FULL_MARKER).write_text(release.debian_version + "\n")
                install_dir(tmp, tree.parent)
        return tree

    def _fill(self, release: SourceRelease, archive: ArchiveIndex, progress: Progress,
              tmp: Path, members: Sequence[str] = EXTRACT_PATHS) -> None:
        progress.step(f"downloading {release.package} {release.debian_version} "
                      f"({release.suite})")
        dl = tmp / "_download"
        dl.mkdir()
        debs = archive.download([release.package_version()], dl, progress.transfer)
        unpacked = tmp / "_unpacked"
        extract_debs(debs, unpacked)
        tarballs = sorted((unpacked / "usr" / "src").glob(f"{release.package}.tar*"))
        if not tarballs:
            raise InfraError(f"{release.package} {release.debian_version} contains no "
                             f"usr/src/{release.package}.tar.*")
        what = ", ".join(members) if members else "everything"
        progress.step(f"extracting {what} from {tarballs[0].name}")
        argv = tar_extract_argv(tarballs[0], tmp, release.top, members)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise InfraError(f"step 'tar -x {tarballs[0].name}' failed (exit "
                             f"{proc.returncode}): {proc.stderr.strip()[-500:]}")
        shutil.rmtree(dl)
        shutil.rmtree(unpacked)
        (tmp / "source.json").write_text(json.dumps(release.model_dump(mode="json"), indent=2))
