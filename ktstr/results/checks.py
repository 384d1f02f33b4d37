"""Pure checks over worker reports: starvation, fairness, gaps, isolation and friends.

Each ``check_*`` takes reports (``ktstr.scenario.reports.WorkerReport``) and a threshold
and returns ``CheckOutcome``s: one failed outcome per offending worker or cgroup (the
detail names the cgroup, the worker, the measured value and the threshold), or a single
passing outcome that carries the worst value seen. ``run_checks`` applies the set an
``Assert`` (merged defaults -> scheduler -> test) switches on.

Scheduling-gap rule under emulation: the ``max_gap_ms`` threshold is multiplied by
``gap_scale``, which the run sets to ``ktstr.vm.host.timeout_scale(accel, topology)``
(1 under KVM, 6 under TCG, times ``KTSTR_TIMEOUT_SCALE``): TCG runs vCPUs as host
threads on few host cores, so a guest task can lose its CPU for several host
time slices without any fault of the guest scheduler. KVM thresholds stay strict.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from ktstr.declare.checks import Assert
from ktstr.results.model import CheckOutcome
from ktstr.scenario.cpuset import cpulist
from ktstr.scenario.plan import CgroupPlan
from ktstr.scenario.reports import Spawned, WorkerReport

STARVATION = "starvation"
FAIRNESS = "fairness"
GAP = "scheduling gap"
ISOLATION = "isolation"
THROUGHPUT_CV = "throughput cv"
WORK_RATE = "work rate"
WAKE_P99 = "wake latency p99"
MIGRATION_RATIO = "migration ratio"
IMBALANCE = "cpu imbalance"
REPORTS = "worker reports"
PLACEMENT = "placement"


def _started(reports: Iterable[WorkerReport]) -> list[WorkerReport]:
    return [r for r in reports if r.started]


def by_cgroup(reports: Iterable[WorkerReport]) -> dict[str, list[WorkerReport]]:
    out: dict[str, list[WorkerReport]] = defaultdict(list)
    for r in reports:
        out[r.cgroup].append(r)
    return dict(out)


def _summary(name: str, worst: tuple[float, str] | None, threshold: float | None,
             unit: str, *, higher_is_worse: bool = True) -> CheckOutcome:
    if worst is None:
        return CheckOutcome(name=name, passed=True, detail="nothing to check",
                            threshold=threshold)
    value, where = worst
    lim = "" if threshold is None else f" ({'limit' if higher_is_worse else 'floor'} " \
        f"{threshold:g}{unit})"
    return CheckOutcome(name=name, passed=True, value=value, threshold=threshold,
                        detail=f"worst {where}: {value:.4g}{unit}{lim}")


def _per_worker(name: str, reports: Iterable[WorkerReport],
                measure: Callable[[WorkerReport], float | None], threshold: float, unit: str,
                what: str, *, higher_is_worse: bool = True) -> list[CheckOutcome]:
    fails: list[CheckOutcome] = []
    worst: tuple[float, str] | None = None
    for r in reports:
        v = measure(r)
        if v is None:
            continue
        if worst is None or (v > worst[0] if higher_is_worse else v < worst[0]):
            worst = (v, r.label)
        bad = v > threshold if higher_is_worse else v < threshold
        if bad:
            cmp = ">" if higher_is_worse else "<"
            fails.append(CheckOutcome(
                name=name, passed=False, value=v, threshold=threshold,
                detail=f"cgroup {r.cgroup}, worker {r.index} (pid {r.pid}): {what} "
                       f"{v:.4g}{unit} {cmp} {threshold:g}{unit}"))
    return fails or [_summary(name, worst, threshold, unit, higher_is_worse=higher_is_worse)]


def check_starvation(reports: Sequence[WorkerReport]) -> list[CheckOutcome]:
    """A started worker that completed no work unit at all."""
    fails = [
        CheckOutcome(name=STARVATION, passed=False, value=0, threshold=1,
                     detail=f"cgroup {r.cgroup}, worker {r.index} (pid {r.pid}): 0 work units "
                            f"in {r.wall_s:.2f} s (on CPU {r.run_ns / 1e6:.0f} ms); "
                            "needs at least 1")
        for r in _started(reports) if r.work_units == 0
    ]
    if fails:
        return fails
    fewest = min(_started(reports), key=lambda r: r.work_units, default=None)
    return [_summary(STARVATION, (fewest.work_units, fewest.label) if fewest else None, 1,
                     " units", higher_is_worse=False)]


def check_fairness(reports: Sequence[WorkerReport], max_spread_pct: float,
                   skip: Iterable[str] = ()) -> list[CheckOutcome]:
    """Within each cgroup: max - min off-CPU % of its workers must stay within the limit."""
    fails: list[CheckOutcome] = []
    worst: tuple[float, str] | None = None
    skipped = set(skip)
    for cg, rs in sorted(by_cgroup(_started(reports)).items()):
        if len(rs) < 2 or cg in skipped:
            continue
        hi = max(rs, key=lambda r: r.off_cpu_pct)
        lo = min(rs, key=lambda r: r.off_cpu_pct)
        spread = hi.off_cpu_pct - lo.off_cpu_pct
        where = (f"cgroup {cg} (worker {hi.index} off-CPU {hi.off_cpu_pct:.1f} %, worker "
                 f"{lo.index} {lo.off_cpu_pct:.1f} %)")
        if worst is None or spread > worst[0]:
            worst = (spread, where)
        if spread > max_spread_pct:
            fails.append(CheckOutcome(
                name=FAIRNESS, passed=False, value=spread, threshold=max_spread_pct,
                detail=f"cgroup {cg}: off-CPU spread {spread:.1f} % > {max_spread_pct:g} %: "
                       f"worker {hi.index} (pid {hi.pid}) {hi.off_cpu_pct:.1f} % vs worker "
                       f"{lo.index} (pid {lo.pid}) {lo.off_cpu_pct:.1f} %"))
    return fails or [_summary(FAIRNESS, worst, max_spread_pct, " %")]


def check_gap(reports: Sequence[WorkerReport], max_gap_ms: float,
              scale: float = 1.0) -> list[CheckOutcome]:
    """Longest time between two work units (intended sleeps excluded)."""
    limit = max_gap_ms * scale
    return _per_worker(GAP, _started(reports), lambda r: r.max_gap_ns / 1e6, limit, " ms",
                       "longest gap between work units")


def check_isolation(reports: Sequence[WorkerReport],
                    cgroups: Sequence[CgroupPlan]) -> list[CheckOutcome]:
    """A worker seen on a CPU its cgroup's cpuset never allowed during the run."""
    plans = {c.name: c for c in cgroups}
    fails: list[CheckOutcome] = []
    checked = 0
    for r in _started(reports):
        plan = plans.get(r.cgroup)
        if plan is None or not plan.cpuset_ever:
            continue
        checked += 1
        outside = sorted(set(r.cpus) - set(plan.allowed_cpus))
        if outside:
            fails.append(CheckOutcome(
                name=ISOLATION, passed=False, value=len(outside), threshold=0,
                detail=f"cgroup {r.cgroup}, worker {r.index} (pid {r.pid}) ran on CPU(s) "
                       f"{cpulist(outside)} outside its cpuset {cpulist(plan.allowed_cpus)} "
                       f"(used {cpulist(r.cpus)})"))
    if fails:
        return fails
    return [CheckOutcome(name=ISOLATION, passed=True, value=0, threshold=0,
                         detail=f"{checked} worker(s) in cpuset cgroups stayed inside"
                         if checked else "no cgroup had a cpuset")]


def check_throughput_cv(reports: Sequence[WorkerReport], max_cv: float) -> list[CheckOutcome]:
    """Per cgroup: standard deviation / mean of the workers' work rates."""
    fails: list[CheckOutcome] = []
    worst: tuple[float, str] | None = None
    for cg, rs in sorted(by_cgroup(_started(reports)).items()):
        rates = [r.work_rate for r in rs]
        if len(rates) < 2 or statistics.fmean(rates) <= 0:
            continue
        cv = statistics.pstdev(rates) / statistics.fmean(rates)
        if worst is None or cv > worst[0]:
            worst = (cv, f"cgroup {cg}")
        if cv > max_cv:
            slow = min(rs, key=lambda r: r.work_rate)
            fails.append(CheckOutcome(
                name=THROUGHPUT_CV, passed=False, value=cv, threshold=max_cv,
                detail=f"cgroup {cg}: throughput CV {cv:.3f} > {max_cv:g}; slowest worker "
                       f"{slow.index} (pid {slow.pid}) {slow.work_rate:.0f} units/s"))
    return fails or [_summary(THROUGHPUT_CV, worst, max_cv, "")]


def check_work_rate(reports: Sequence[WorkerReport], min_rate: float) -> list[CheckOutcome]:
    return _per_worker(WORK_RATE, _started(reports), lambda r: r.work_rate, min_rate,
                       " units/s", "work rate", higher_is_worse=False)


def check_wake_latency(reports: Sequence[WorkerReport],
                       max_p99_us: float) -> list[CheckOutcome]:
    return _per_worker(WAKE_P99, _started(reports),
                       lambda r: None if r.wake_p99_ns is None else r.wake_p99_ns / 1e3,
                       max_p99_us, " us", "p99 wake-up latency")


def check_migration_ratio(reports: Sequence[WorkerReport],
                          max_ratio: float) -> list[CheckOutcome]:
    def ratio(r: WorkerReport) -> float | None:
        if r.migrations is None or r.switches == 0:
            return None
        return r.migrations / r.switches

    return _per_worker(MIGRATION_RATIO, _started(reports), ratio, max_ratio, "",
                       "migrations per context switch")


#: /proc/stat columns that are time a CPU spent running something
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal


def parse_cpu_stat(text: str) -> dict[int, int]:
    """Busy clock ticks per CPU from ``/proc/stat`` (``cpuN user nice system idle iowait
    irq softirq steal ...``)."""
    out: dict[int, int] = {}
    for line in text.splitlines():
        head, _, rest = line.partition(" ")
        if not head.startswith("cpu") or not head[3:].isdigit():
            continue
        cols = [int(x) for x in rest.split()]
        out[int(head[3:])] = sum(cols[i] for i in _BUSY_COLUMNS if i < len(cols))
    return out


def cpu_busy(begin: str, end: str) -> dict[int, int]:
    """Busy ticks per CPU between two ``/proc/stat`` snapshots."""
    a, b = parse_cpu_stat(begin), parse_cpu_stat(end)
    return {cpu: b[cpu] - a.get(cpu, 0) for cpu in sorted(b)}


def check_imbalance(busy: Mapping[int, int], cpus: Iterable[int],
                    max_ratio: float) -> list[CheckOutcome]:
    """Busiest over least busy CPU, by the time each spent running anything over the
    scenario (``/proc/stat``), among the CPUs the scenario's cgroups could use. A CPU
    with no busy tick at all counts as one tick, so the ratio stays finite."""
    considered = sorted(set(cpus) & set(busy)) or sorted(busy)
    if len(considered) < 2:
        return [CheckOutcome(name=IMBALANCE, passed=True, threshold=max_ratio,
                             detail="fewer than two CPUs to compare")]
    hi = max(considered, key=lambda c: busy[c])
    lo = min(considered, key=lambda c: busy[c])
    ratio = busy[hi] / max(busy[lo], 1)
    detail = (f"CPU {hi} busy {busy[hi]} ticks vs CPU {lo} {busy[lo]} ticks: ratio "
              f"{ratio:.2f} over CPUs {cpulist(considered)}")
    if ratio > max_ratio:
        return [CheckOutcome(name=IMBALANCE, passed=False, value=ratio, threshold=max_ratio,
                             detail=f"{detail} > {max_ratio:g}")]
    return [CheckOutcome(name=IMBALANCE, passed=True, value=ratio, threshold=max_ratio,
                         detail=f"{detail} (limit {max_ratio:g})")]


def imbalance_cpus(cgroups: Sequence[CgroupPlan], online: Iterable[int]) -> list[int]:
    """The CPUs a scenario's work could use: the union of its cgroups' cpusets when every
    cgroup has one, else every online CPU."""
    if cgroups and all(c.cpuset_ever for c in cgroups):
        return sorted({cpu for c in cgroups for cpu in c.allowed_cpus})
    return sorted(online)


def check_reports(reports: Sequence[WorkerReport], spawned: Sequence[Spawned],
                  root: str = "") -> list[CheckOutcome]:
    """Every spawned worker reported, started, and sat in its cgroup when it began."""
    fails: list[CheckOutcome] = []
    have = {(r.cgroup, r.index) for r in reports}
    for s in spawned:
        if (s.cgroup, s.index) not in have:
            fails.append(CheckOutcome(name=REPORTS, passed=False,
                                      detail=f"cgroup {s.cgroup}, worker {s.index} (pid "
                                             f"{s.pid}) wrote no report (killed or crashed)"))
    for r in reports:
        if r.error:
            fails.append(CheckOutcome(name=REPORTS, passed=False,
                                      detail=f"{r.label} could not start: {r.error}"))
        elif not r.started:
            fails.append(CheckOutcome(name=REPORTS, passed=False,
                                      detail=f"{r.label} was stopped before it started"))
        want = f"{root.rstrip('/')}/{r.cgroup}"
        if r.started and root and r.cgroup_at_start != want:
            fails.append(CheckOutcome(name=PLACEMENT, passed=False,
                                      detail=f"{r.label} began work in cgroup "
                                             f"{r.cgroup_at_start!r}, not {want!r}"))
    if fails:
        return fails
    return [CheckOutcome(name=REPORTS, passed=True, value=len(reports),
                         detail=f"{len(reports)} worker(s) reported"
                         + (", each placed in its cgroup before working" if root else ""))]


def run_checks(
    reports: Sequence[WorkerReport],
    assert_: Assert,
    *,
    cgroups: Sequence[CgroupPlan] = (),
    spawned: Sequence[Spawned] = (),
    root: str = "",
    gap_scale: float = 1.0,
    busy: Mapping[int, int] | None = None,
) -> list[CheckOutcome]:
    """Every check ``assert_`` enables, in a stable order. ``busy`` is the busy time
    per CPU over the run (``cpu_busy``), for ``max_imbalance_ratio``."""
    out = check_reports(reports, spawned, root)
    if assert_.not_starved:
        out += check_starvation(reports)
    if assert_.max_spread_pct is not None:
        realtime = [c.name for c in cgroups if c.sched_policy.realtime]
        out += check_fairness(reports, assert_.max_spread_pct, skip=realtime)
    if assert_.max_gap_ms is not None:
        out += check_gap(reports, assert_.max_gap_ms, gap_scale)
    if assert_.isolation:
        out += check_isolation(reports, cgroups)
    if assert_.max_throughput_cv is not None:
        out += check_throughput_cv(reports, assert_.max_throughput_cv)
    if assert_.min_work_rate is not None:
        out += check_work_rate(reports, assert_.min_work_rate)
    if assert_.max_p99_wake_latency_us is not None:
        out += check_wake_latency(reports, assert_.max_p99_wake_latency_us)
    if assert_.max_migration_ratio is not None:
        out += check_migration_ratio(reports, assert_.max_migration_ratio)
    if assert_.max_imbalance_ratio is not None:
        if busy:
            out += check_imbalance(busy, imbalance_cpus(cgroups, busy),
                                   assert_.max_imbalance_ratio)
        else:
            out.append(CheckOutcome(name=IMBALANCE, passed=False,
                                    threshold=assert_.max_imbalance_ratio,
                                    detail="no per-CPU busy time from the guest"))
    return out
