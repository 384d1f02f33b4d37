"""Which kernel: spec matching against the archive (pure) and ``resolve_kernel``.

Matching a ``KernelId`` against what the archive offers:

- ``7.2`` (major.minor) -> the newest 7.2.x available
- ``7.2.13`` / ``7.3-rc7`` -> exactly that upstream version
- ``7.2..=7.3`` -> every available version in the range (``KernelId.contains_version``)

``resolve_kernel(spec)`` is what ``ktstr run/shell/test`` call when they need one kernel:
explicit spec (fetched if needed) -> ``$KTSTR_KERNEL`` -> the newest cached kernel with
sched_ext -> a ``UserError`` with the exact ``ktstr kernel fetch`` command to run.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ktstr.errors import UserError
from ktstr.kernel.id import KernelId, KernelKind, version_key
from ktstr.kernel.packages import ArchiveKernel

if TYPE_CHECKING:
    from ktstr.kernel.cache import CachedKernel, KernelCache
    from ktstr.kernel.fetch import Fetcher

log = logging.getLogger(__name__)

KERNEL_ENV = "KTSTR_KERNEL"
DEFAULT_FETCH = "7.2"


def is_series(version: str) -> bool:
    """``7.2`` (no patch level, no rc) names a whole series."""
    return version.count(".") == 1 and "-rc" not in version


def spec_covers(kid: KernelId, version: str) -> bool:
    """Whether a version or range spec covers an upstream ``version`` (a series spec
    ``7.2`` covers every 7.2.x)."""
    if kid.kind is KernelKind.RANGE:
        return kid.contains_version(version)
    if kid.kind is not KernelKind.VERSION:
        return False
    assert kid.version is not None
    if is_series(kid.version):
        return version_key(version)[:2] == version_key(kid.version)[:2]
    return version == kid.version


def nearest_versions(wanted: str, versions: Sequence[str], count: int = 6) -> list[str]:
    """Up to ``count`` of ``versions`` around ``wanted`` in version order."""
    ordered = sorted(set(versions), key=version_key)
    keys = [version_key(v) for v in ordered]
    at = bisect.bisect_left(keys, version_key(wanted))
    lo = max(0, min(at - count // 2, len(ordered) - count))
    return ordered[lo:lo + count]


def match_archive(kid: KernelId, available: Sequence[ArchiveKernel]) -> list[ArchiveKernel]:
    """The archive kernels a version or range spec names; ``UserError`` if none."""
    if kid.kind is KernelKind.RANGE:
        found = [k for k in available if kid.contains_version(k.version)]
        if found:
            return sorted(found, key=lambda k: version_key(k.version))
        assert kid.start is not None
        raise _unknown(kid.raw, kid.start, available)
    if kid.kind is not KernelKind.VERSION:
        raise ValueError(f"match_archive() takes versions and ranges, not {kid.kind}")
    assert kid.version is not None
    want = kid.version
    if is_series(want):
        series = version_key(want)[:2]
        found = [k for k in available if version_key(k.version)[:2] == series]
        if found:
            return [max(found, key=lambda k: version_key(k.version))]
    else:
        exact = [k for k in available if k.version == want]
        if exact:
            return exact[:1]
    raise _unknown(kid.raw, want, available)


def _unknown(raw: str, anchor: str, available: Sequence[ArchiveKernel]) -> UserError:
    if not available:
        return UserError(f"no kernel {raw!r}: the archive offers no kernels in this flavour")
    near = nearest_versions(anchor, [k.version for k in available])
    return UserError(
        f"no kernel {raw!r} in the archive; nearest available: {', '.join(near)} "
        "(all of them: ktstr kernel list --available)"
    )


def missing_kernel_error() -> UserError:
    return UserError(
        "no kernel given and none cached with sched_ext. Fetch one:\n"
        f"    ktstr kernel fetch {DEFAULT_FETCH}\n"
        f"or pass --kernel SPEC, or set {KERNEL_ENV} (a version, path or cache key)"
    )


def default_cached(cache: KernelCache) -> CachedKernel | None:
    """The newest usable cached kernel with sched_ext."""
    usable = [k for k in cache.entries() if k.sched_ext]
    return max(usable, key=lambda k: k.sort_key) if usable else None


def resolve_kernel(spec: str | None = None, *, fetcher: Fetcher | None = None) -> CachedKernel:
    """One kernel for a run. A version that resolves to several kernels (a range) is an
    error here: runs take one kernel, sweeps call ``Fetcher.fetch`` themselves.

    A version already in the cache is used without touching the archive (``7.2`` = the
    newest cached 7.2.x); otherwise it is fetched.
    """
    from ktstr.kernel.fetch import Fetcher

    fetcher = fetcher or Fetcher()
    chosen = spec or os.environ.get(KERNEL_ENV) or None
    if chosen is None:
        found = default_cached(fetcher.cache)
        if found is None:
            raise missing_kernel_error()
        log.info("using newest cached sched_ext kernel %s", found.key)
        return found
    kid = KernelId.parse(chosen)
    if kid.kind is KernelKind.VERSION:
        cached = cached_version(fetcher.cache, kid)
        if cached is not None:
            return cached
    kernels = fetcher.fetch(kid)
    if len(kernels) != 1:
        raise UserError(f"kernel spec {chosen!r} names {len(kernels)} kernels "
                        f"({', '.join(k.version for k in kernels)}); give one version")
    return kernels[0]


def cached_version(cache: KernelCache, kid: KernelId) -> CachedKernel | None:
    """The newest cached kernel satisfying a version spec, without asking the archive:
    ``7.2.13`` exactly, ``7.2`` the newest cached 7.2.x (``ktstr kernel fetch 7.2`` is the
    way to move to a newer one)."""
    assert kid.version is not None
    want = kid.version
    if is_series(want):
        matches = [k for k in cache.entries()
                   if version_key(k.version)[:2] == version_key(want)[:2]]
    else:
        matches = [k for k in cache.entries() if k.version == want]
    matches = [k for k in matches if k.flavour in (None, "amd64")]
    return max(matches, key=lambda k: k.sort_key) if matches else None
