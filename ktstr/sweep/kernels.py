"""``--kernel SPEC`` (repeatable) -> the kernels of a sweep.

A version (``7.2``, ``7.2.13``) is one kernel, taken from the cache when it is there
(``7.2`` = the newest cached 7.2.x), else fetched; a range (``7.2..=7.3``) expands to
every version the archive offers in it (each fetched); a path or cache key is itself.
No ``--kernel`` means the default kernel of ``ktstr run``. Duplicates are dropped.

With ``fetch=False`` (``--list``) nothing is downloaded: kernels not in the cache are
named from the archive index (their sched_ext is assumed until fetched).
"""

from __future__ import annotations

from collections.abc import Sequence

from ktstr.kernel.cache import CachedKernel
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.id import KernelId, KernelKind
from ktstr.kernel.match import match_archive
from ktstr.kernel.resolve import cached_version, resolve_kernel
from ktstr.sweep.cells import KernelEntry


def entry_for(spec: str, kernel: CachedKernel) -> KernelEntry:
    return KernelEntry(spec=spec, version=kernel.version, key=kernel.key,
                       release=kernel.release or "", sched_ext=kernel.sched_ext)


def _unfetched(spec: str, kid: KernelId, fetcher: Fetcher) -> list[KernelEntry]:
    """What a version or range names, from the cache or else the archive index."""
    if kid.kind is KernelKind.VERSION:
        cached = cached_version(fetcher.cache, kid)
        if cached is not None:
            return [entry_for(spec, cached)]
    out = []
    for ak in match_archive(kid, fetcher.available):
        cached = fetcher.cache.get(ak.key)
        out.append(entry_for(spec, cached) if cached is not None else KernelEntry(
            spec=spec, version=ak.version, key=ak.key, release=ak.release))
    return out


def kernel_entries(specs: Sequence[str], fetcher: Fetcher | None = None, *,
                   fetch: bool = True) -> list[KernelEntry]:
    fetcher = fetcher or Fetcher()
    found: list[KernelEntry] = []
    if not specs:
        k = resolve_kernel(None, fetcher=fetcher)
        return [entry_for(k.version, k)]
    for spec in specs:
        kid = KernelId.parse(spec)
        if not fetch and kid.kind in (KernelKind.VERSION, KernelKind.RANGE):
            entries = _unfetched(spec, kid, fetcher)
        elif kid.kind is KernelKind.RANGE:
            entries = [entry_for(spec, k) for k in fetcher.fetch(kid)]
        else:
            entries = [entry_for(spec, resolve_kernel(spec, fetcher=fetcher))]
        for e in entries:
            if all(f.key != e.key for f in found):
                found.append(e)
    return found
