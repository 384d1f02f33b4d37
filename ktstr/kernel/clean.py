"""What ``ktstr kernel clean`` removes (planned purely from the cache scan, then removed)."""

from __future__ import annotations

from pathlib import Path

from ktstr.kernel.cache import EntryState, EntryStatus, KernelCache
from ktstr.kernel.id import KernelId, KernelKind
from ktstr.kernel.locking import discard_dir, is_locked
from ktstr.kernel.match import spec_covers


def select_for_clean(statuses: list[EntryStatus], *, spec: str | None, keep: int | None,
                     corrupt_only: bool) -> list[EntryStatus]:
    """Entries to remove, given the scan (sorted oldest version first)."""
    if corrupt_only:
        return [s for s in statuses if s.state is EntryState.CORRUPT]
    chosen = statuses
    if spec:
        kid = KernelId.parse(spec)
        if kid.kind is KernelKind.CACHE_KEY:
            chosen = [s for s in statuses if s.key == kid.raw]
        else:
            chosen = [s for s in statuses if s.kernel is not None and
                      spec_covers(kid, s.kernel.version)]
    if keep:
        ok = [s for s in chosen if s.state is EntryState.OK]
        kept = {s.key for s in ok[-keep:]}
        chosen = [s for s in chosen if s.key not in kept]
    return chosen


def plan_clean(*, spec: str | None, keep: int | None, corrupt_only: bool,
               cache: KernelCache | None = None) -> list[Path]:
    cache = cache or KernelCache()
    doomed = [s.path for s in select_for_clean(cache.scan(), spec=spec, keep=keep,
                                                corrupt_only=corrupt_only)]
    return doomed + list(cache.stale_staging())


def idle_build_dirs(root: Path) -> list[Path]:
    """Out-of-tree build directories of ``ktstr kernel build`` that no build holds."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not is_locked(root / ".locks" / f"{p.name}.lock"))


def remove_entries(plan: list[Path], cache: KernelCache | None = None) -> None:
    cache = cache or KernelCache()
    for path in plan:
        if path.name.startswith("."):
            if path.exists():  # stale_staging() checked that nobody holds its lock
                discard_dir(path)
        else:
            cache.remove(path.name)
