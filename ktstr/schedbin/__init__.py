"""Scheduler binaries: the kernel's example sched_ext schedulers built from Debian's
``linux-source-X.Y``, cached per source version, and discovery of a scheduler binary."""

from ktstr.schedbin.cache import SchedulerBuild, SchedulerCache
from ktstr.schedbin.discover import (
    SCHEDULER_ENV,
    discover_scheduler,
    series_artifacts,
    series_of,
)

__all__ = [
    "SCHEDULER_ENV",
    "SchedulerBuild",
    "SchedulerCache",
    "discover_scheduler",
    "series_artifacts",
    "series_of",
]
