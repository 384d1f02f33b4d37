"""What each worker reports (one JSON line, written by ``ktstr-worker`` when stopped),
and the line-fed parsers for the ``worker_reports`` and ``worker_spawned`` blobs."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ktstr.declare.base import Frozen


class WorkerReport(BaseModel):
    """Counters are deltas over the worker's working window (start signal to stop)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    cgroup: str = Field(description="cgroup name below the scenario root")
    index: int = Field(description="worker number within the cgroup")
    pid: int
    work_type: str
    policy: str = "normal"
    priority: int = 0
    nice: int = 0
    affinity: str = Field("", description="cpulist given at spawn ('' = unrestricted)")
    cgroup_at_start: str = Field("", description="/proc/self/cgroup when work began")
    cgroup_at_stop: str = ""
    error: str = Field("", description="why the worker could not start, if it could not")
    started: bool = Field(description="it received the start signal and worked")
    wall_ns: int = Field(0, description="CLOCK_MONOTONIC length of the working window")
    run_ns: int = Field(0, description="/proc/self/schedstat: time on a CPU")
    wait_ns: int = Field(0, description="/proc/self/schedstat: time runnable, waiting")
    timeslices: int = Field(0, description="/proc/self/schedstat: times it ran")
    voluntary_switches: int = 0
    involuntary_switches: int = 0
    migrations: int | None = Field(None, description="/proc/self/sched se.nr_migrations")
    cpus: tuple[int, ...] = Field((), description="CPUs it was seen on (sched_getcpu)")
    work_units: int = 0
    max_gap_ns: int = Field(0, description="longest time between two work units, minus "
                            "any sleep the work type asked for")
    max_gap_at_ns: int = Field(0, description="when that gap ended, from the window start")
    wake_samples: int = 0
    wake_p50_ns: int | None = None
    wake_p99_ns: int | None = None
    wake_max_ns: int | None = None

    @property
    def label(self) -> str:
        return f"{self.cgroup}/worker {self.index} (pid {self.pid})"

    @property
    def wall_s(self) -> float:
        return self.wall_ns / 1e9

    @property
    def off_cpu_pct(self) -> float:
        """Share of the working window spent off a CPU (waiting or sleeping), %."""
        if self.wall_ns <= 0:
            return 100.0
        return max(0.0, min(100.0, 100.0 * (1 - self.run_ns / self.wall_ns)))

    @property
    def work_rate(self) -> float:
        """Work units per second of the working window."""
        return self.work_units / self.wall_s if self.wall_ns > 0 else 0.0

    @property
    def switches(self) -> int:
        return self.voluntary_switches + self.involuntary_switches


class Spawned(Frozen):
    """One worker the guest started (``key index pid cgroup`` lines)."""

    key: str
    index: int
    pid: int
    cgroup: str


def parse_worker_reports(text: str) -> tuple[list[WorkerReport], list[str]]:
    """Reports, and a description of every line that is not one."""
    reports: list[WorkerReport] = []
    bad: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        try:
            reports.append(WorkerReport.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            bad.append(f"line {n}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    return reports, bad


def parse_spawned(text: str) -> list[Spawned]:
    out: list[Spawned] = []
    for line in text.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
            out.append(Spawned(key=parts[0], index=int(parts[1]), pid=int(parts[2]),
                               cgroup=parts[3]))
    return out
