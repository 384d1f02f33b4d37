"""SUT usage from job and lease intervals (pure): busy share, jobs run, failure rate.

A SUT is busy while it holds a job (assigned to finished) or a lease (acquired to
ended). Intervals of one SUT are merged before they are summed, so a SUT is never more
than 100 % busy; the capacity of a group is its SUTs' time in the window.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

from pydantic import Field

from ktstr.declare.base import Frozen


class By(enum.StrEnum):
    SUT = "sut"
    USER = "user"
    SUTCLASS = "sutclass"


class Interval(Frozen):
    """One stretch of a SUT's time held by a job or a lease."""

    sut: str
    sutclass: str
    user: str
    start: float
    end: float | None = Field(description="None: still held")
    is_job: bool = True
    failed: bool = False  # a job that failed, timed out or had a failing verdict


class UsageRow(Frozen):
    key: str
    suts: int
    busy_s: float
    capacity_s: float
    busy: float = Field(description="busy share of the group's SUT time, 0..1")
    jobs: int
    failed_jobs: int
    failure_rate: float | None = Field(description="failed / jobs; None without jobs")
    leases: int


def clip(start: float, end: float | None, lo: float, hi: float, now: float
         ) -> tuple[float, float] | None:
    """The part of [start, end or now) inside [lo, hi), or None."""
    a, b = max(start, lo), min(end if end is not None else now, hi)
    return (a, b) if b > a else None


def union_length(spans: Iterable[tuple[float, float]]) -> float:
    total, cur_a, cur_b = 0.0, None, None
    for a, b in sorted(spans):
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None and cur_b is not None:
        total += cur_b - cur_a
    return total


def busy_share(intervals: Sequence[tuple[float, float | None]], suts: int, lo: float,
               hi: float, now: float) -> float:
    """Share of ``suts`` SUTs' time in [lo, hi) covered by the (unmerged) intervals."""
    span = (hi - lo) * max(suts, 1)
    if span <= 0:
        return 0.0
    busy = sum(b - a for a, b in filter(None, (clip(s, e, lo, hi, now) for s, e in intervals)))
    return min(busy / span, 1.0)


def _key(iv: Interval, by: By) -> str:
    return {By.SUT: iv.sut, By.USER: iv.user, By.SUTCLASS: iv.sutclass}[by]


def usage_report(intervals: Sequence[Interval], suts: Mapping[str, str], by: By, lo: float,
                 hi: float, now: float) -> list[UsageRow]:
    """Rows per SUT, user or SUT class, busiest first. ``suts`` maps every SUT to its
    class (idle SUTs get a row too when grouping by SUT or class)."""
    span = max(hi - lo, 0.0)
    per_sut_key: dict[tuple[str, str], list[tuple[float, float]]] = {}
    counts: dict[str, list[int]] = {}  # key -> [jobs, failed, leases]
    for iv in intervals:
        key = _key(iv, by)
        part = clip(iv.start, iv.end, lo, hi, now)
        if part is None:
            continue
        per_sut_key.setdefault((key, iv.sut), []).append(part)
        c = counts.setdefault(key, [0, 0, 0])
        if iv.is_job:
            c[0] += 1
            c[1] += int(iv.failed)
        else:
            c[2] += 1
    busy: dict[str, float] = {}
    for (key, _sut), spans in per_sut_key.items():
        busy[key] = busy.get(key, 0.0) + union_length(spans)
    if by is By.SUT:
        groups = dict.fromkeys(suts, 1)
    elif by is By.SUTCLASS:
        groups = {}
        for cls in suts.values():
            groups[cls] = groups.get(cls, 0) + 1
    else:  # a user's share of the whole pool
        groups = {key: len(suts) for key in counts}
    for key in counts:
        groups.setdefault(key, 1)
    rows = []
    for key, n in groups.items():
        jobs, failed, leases = counts.get(key, [0, 0, 0])
        capacity = span * max(n, 1)
        b = busy.get(key, 0.0)
        rows.append(UsageRow(key=key, suts=n, busy_s=b, capacity_s=capacity,
                             busy=min(b / capacity, 1.0) if capacity else 0.0, jobs=jobs,
                             failed_jobs=failed,
                             failure_rate=failed / jobs if jobs else None, leases=leases))
    return sorted(rows, key=lambda r: (-r.busy, -r.jobs, r.key))
