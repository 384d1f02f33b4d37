"""Fetch kernels into the cache: Debian packages through the private apt, or local paths.

``Fetcher.fetch(spec)`` resolves a spec (``match.match_archive``) and returns one
``CachedKernel`` per concrete kernel, reusing valid cache entries.
"""

from __future__ import annotations

import logging
import shutil
import time
from functools import cached_property
from pathlib import Path

from ktstr.errors import UserError
from ktstr.kernel.archive import ArchiveIndex, PrivateApt
from ktstr.kernel.cache import CachedKernel, KernelCache, KernelSource, finish_entry
from ktstr.kernel.extract import assemble, extract_debs
from ktstr.kernel.id import KernelId, KernelKind
from ktstr.kernel.local import use_local
from ktstr.kernel.match import match_archive
from ktstr.kernel.packages import ArchiveKernel, Flavour, available_kernels
from ktstr.kernel.progress import NullProgress, Progress

log = logging.getLogger(__name__)


class Fetcher:
    """Resolves specs and fills the cache. ``archive`` is created lazily (``PrivateApt``)."""

    def __init__(self, cache: KernelCache | None = None, archive: ArchiveIndex | None = None,
                 *, flavour: Flavour = Flavour.GENERIC, progress: Progress | None = None) -> None:
        self.cache = cache or KernelCache()
        self._archive = archive
        self.flavour = flavour
        self.progress: Progress = progress or NullProgress()

    @property
    def archive(self) -> ArchiveIndex:
        if self._archive is None:
            self._archive = PrivateApt()
        return self._archive

    @cached_property
    def available(self) -> list[ArchiveKernel]:
        """What the archive offers in this flavour, oldest first."""
        self.progress.step(f"reading the archive index ({self.flavour.value} kernels)")
        return available_kernels(self.archive, self.flavour)

    def fetch(self, spec: str | KernelId) -> list[CachedKernel]:
        kid = spec if isinstance(spec, KernelId) else KernelId.parse(spec)
        if kid.kind is KernelKind.GIT:
            raise UserError(
                f"git kernel specs are not supported ({kid.raw}): build the tree "
                "(make bzImage) and pass its path, e.g. ktstr kernel fetch ~/src/linux"
            )
        if kid.kind is KernelKind.PATH:
            assert kid.path is not None
            self.progress.step(f"using local kernel {kid.path}")
            return [use_local(Path(kid.path), self.cache)]
        if kid.kind is KernelKind.CACHE_KEY:
            return [self.cached_key(kid.raw)]
        return [self.fetch_archive(k) for k in match_archive(kid, self.available)]

    def cached_key(self, key: str) -> CachedKernel:
        found = self.cache.get(key)
        if found is not None:
            return found
        status = self.cache.status(key)
        if status is not None:
            raise UserError(f"kernel cache entry {key!r} is corrupt: {'; '.join(status.problems)}"
                            f" (remove it: ktstr kernel clean --corrupt-only)")
        known = [k.key for k in self.cache.entries()]
        raise UserError(
            f"{key!r} is not a kernel version, path or cached kernel; cached keys: "
            f"{', '.join(known) or '(none)'}. Fetch one with e.g. `ktstr kernel fetch 7.2`"
        )

    def fetch_archive(self, kernel: ArchiveKernel) -> CachedKernel:
        found = self.cache.get(kernel.key)
        if found is not None:
            self.progress.step(f"{kernel.release}: already cached")
            return found
        return self.cache.ensure(kernel.key, lambda tmp: self._build(kernel, tmp))

    def _build(self, kernel: ArchiveKernel, tmp: Path) -> CachedKernel:
        started = time.monotonic()
        self.progress.step(f"{kernel.release}: downloading {', '.join(kernel.package_names)} "
                           f"({kernel.debian_version}, {kernel.suite})")
        downloads = tmp / "_download"
        downloads.mkdir()
        debs = self.archive.download(kernel.packages, downloads, self.progress.transfer)
        self.progress.step(f"{kernel.release}: extracting {len(debs)} package(s)")
        unpacked = tmp / "_unpacked"
        extract_debs(debs, unpacked)
        names = assemble(unpacked, kernel.release, tmp)
        for scratch in (downloads, unpacked):
            shutil.rmtree(scratch, ignore_errors=True)
        entry = finish_entry(
            tmp, **names, key=kernel.key, version=kernel.version, release=kernel.release,
            debian_version=kernel.debian_version, suite=kernel.suite,
            source=KernelSource.DEBIAN, flavour=kernel.flavour.value,
            packages=[p.ref for p in kernel.packages],
        )
        self.progress.step(f"{kernel.release}: cached ({entry.size_bytes / 1e6:.0f} MB, "
                           f"sched_ext {'yes' if entry.sched_ext else 'no'}, "
                           f"{time.monotonic() - started:.1f}s)")
        return entry

