"""Matching a ``KernelId`` against what the archive offers (pure):

- ``7.2`` (major.minor) -> the newest 7.2.x available
- ``7.2.13`` / ``7.3-rc7`` -> exactly that upstream version
- ``7.2..=7.3`` -> every available version in the range (``KernelId.contains_version``)
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ktstr.errors import UserError
from ktstr.kernel.id import KernelId, KernelKind, version_key
from ktstr.kernel.packages import ArchiveKernel


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
