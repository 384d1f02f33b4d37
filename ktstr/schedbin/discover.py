"""Finding a scheduler binary, in this order:

1. ``$KTSTR_SCHEDULER``: a path to the binary itself, or a directory containing it;
2. the scheduler cache: the build whose source series matches the kernel (a 7.2.x kernel
   -> source 7.2; no kernel given -> the newest built series);
3. ``$PATH``.

A failure lists every place looked at and the ``ktstr schedulers build`` command to run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from ktstr.errors import UserError
from ktstr.kernel.id import upstream_version, version_key
from ktstr.schedbin.cache import SchedulerBuild, SchedulerCache

SCHEDULER_ENV = "KTSTR_SCHEDULER"


def series_of(kernel_release_or_version: str) -> str:
    """``7.2.13+deb14-amd64`` / ``7.2.13`` / ``7.3-rc7`` -> ``7.2`` / ``7.2`` / ``7.3``."""
    major, minor, *_ = version_key(upstream_version(kernel_release_or_version))
    return f"{major}.{minor}"


def _build_for(cache: SchedulerCache, kernel: str | None) -> tuple[SchedulerBuild | None, str]:
    """The build to look in and the series it stands for."""
    if kernel is not None:
        series = series_of(kernel)
        return cache.for_series(series), series
    builds = cache.builds()
    if builds:
        return builds[-1], builds[-1].series
    return None, "7.2"


def discover_scheduler(name: str, kernel_release_or_version: str | None = None, *,
                       cache: SchedulerCache | None = None,
                       env: Mapping[str, str] | None = None) -> Path:
    """The binary for scheduler ``name`` (e.g. ``scx_simple``)."""
    env = os.environ if env is None else env
    cache = cache or SchedulerCache()
    looked: list[str] = []
    override = env.get(SCHEDULER_ENV)
    if override:
        p = Path(override).expanduser()
        candidate = p / name if p.is_dir() else p
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        looked.append(f"${SCHEDULER_ENV}={override} (no executable {candidate})")
    else:
        looked.append(f"${SCHEDULER_ENV} (not set)")
    build, series = _build_for(cache, kernel_release_or_version)
    if build is not None:
        candidate = build.binary(name)
        if candidate.is_file():
            return candidate
        looked.append(f"scheduler cache {build.entry_dir} (built: "
                      f"{', '.join(build.schedulers)})")
    else:
        looked.append(f"scheduler cache {cache.root} (no build for series {series})")
    search = env.get("PATH", "")
    found = shutil.which(name, path=search)
    if found:
        return Path(found)
    looked.append(f"$PATH ({search or 'empty'})")
    raise UserError(
        f"scheduler binary {name!r} not found. Looked in:\n  - " + "\n  - ".join(looked)
        + f"\nBuild the kernel's example schedulers with:\n    ktstr schedulers build "
        f"--series {series}"
    )


def series_artifacts(kernel_release_or_version: str | None = None, *,
                     cache: SchedulerCache | None = None) -> SchedulerBuild:
    """The build matching a kernel (or the newest): ``.objects()`` are the BPF objects,
    ``.veristat`` and ``.bpftool`` the tools, all host paths."""
    cache = cache or SchedulerCache()
    build, series = _build_for(cache, kernel_release_or_version)
    if build is None:
        raise UserError(f"no scheduler build for series {series} in {cache.root}; run:\n"
                        f"    ktstr schedulers build --series {series}")
    return build
