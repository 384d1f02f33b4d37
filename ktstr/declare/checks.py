"""Check overrides (``Assert``) and their merge chain: defaults -> scheduler -> test."""

from __future__ import annotations

from typing import Self

from pydantic import Field

from ktstr.declare.base import Frozen


class Assert(Frozen):
    """Thresholds for the post-run checks. ``None`` means "not set here": when merged,
    a later layer's set value wins (defaults -> scheduler -> test)."""

    not_starved: bool | None = Field(None, description="every worker made progress")
    max_spread_pct: float | None = Field(
        None, ge=0, le=100, description="fairness: largest spread of CPU time between workers, %"
    )
    max_gap_ms: float | None = Field(
        None, gt=0, description="longest time a runnable worker went without a CPU, ms"
    )
    isolation: bool | None = Field(None, description="workers stayed inside their cpusets")
    max_imbalance_ratio: float | None = Field(
        None, ge=1, description="busiest over least busy CPU by run time over a scenario "
        "(/proc/stat), among the CPUs its cgroups could use"
    )
    max_throughput_cv: float | None = Field(
        None, ge=0, description="coefficient of variation of worker throughput"
    )
    min_work_rate: float | None = Field(
        None, ge=0, description="least work units per second per worker"
    )
    max_p99_wake_latency_us: float | None = Field(
        None, gt=0, description="99th percentile wake-up latency, microseconds"
    )
    max_migration_ratio: float | None = Field(
        None, ge=0, description="CPU migrations per context switch"
    )
    scheduler_alive: bool | None = Field(
        None, description="the sched_ext scheduler must stay attached to the end; False lets "
        "the run go on after it exits or is ejected (a note, not a failure)"
    )

    @classmethod
    def default_checks(cls) -> Assert:
        """ktstr's defaults: starvation on, fairness spread 15 %, gap 2000 ms,
        cpuset isolation off, scheduler must stay attached; the rest unset."""
        return cls(
            not_starved=True,
            max_spread_pct=15.0,
            max_gap_ms=2000.0,
            isolation=False,
            scheduler_alive=True,
        )

    def merge(self, later: Assert | None) -> Self:
        """``self`` overridden by every field ``later`` sets."""
        if later is None:
            return self
        return self.model_copy(update=later.model_dump(exclude_none=True))

    @classmethod
    def chain(cls, *layers: Assert | None) -> Assert:
        out = cls.default_checks()
        for layer in layers:
            out = out.merge(layer)
        return out


NO_OVERRIDES = Assert()
