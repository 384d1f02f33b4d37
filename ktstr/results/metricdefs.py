"""The metrics worth comparing between runs: name, unit, polarity, and where they come
from (``MetricRegistry``), and their extraction from a ``RunResult`` (pure).

Three kinds, kept apart:

- **scheduler** metrics from the scenario workers (``ktstr-worker`` reports: schedstat
  run and wait time, timeslices, voluntary switches, migrations, work units, gaps);
- **payload** metrics parsed from a payload's output (stress-ng, hackbench, cyclictest, or
  any payload that declares ``MetricHint``s): also the scheduler's doing;
- **harness** facts (boot, attach): how long ktstr and the emulator took, reported on
  their own and never gated on by default.

A metric *family* (``cgroup.cpu_pct``) has a template (``cgroup.{cgroup}.cpu_pct``);
each run yields concrete metrics (``cgroup.cg_0.cpu_pct``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.payload import MetricHint, Payload, Polarity
from ktstr.errors import DuplicateNameError, UnknownNameError
from ktstr.results.model import RunResult


class MetricKind(enum.StrEnum):
    SCHEDULER = "scheduler"  # what the scheduler did to the workload
    PAYLOAD = "payload"  # what a payload measured (also the scheduler's doing)
    HARNESS = "harness"  # ktstr and the emulator (boot, attach): kept apart

    @property
    def gated(self) -> bool:
        """Whether ``--fail-on`` looks at it by default."""
        return self is not MetricKind.HARNESS


class MetricDef(Frozen):
    """One family of metrics."""

    key: str = Field(description="family key, e.g. cgroup.cpu_pct")
    template: str = Field(description="concrete name, e.g. cgroup.{cgroup}.cpu_pct")
    unit: str = ""
    polarity: Polarity = Polarity.NEUTRAL
    kind: MetricKind = MetricKind.SCHEDULER
    description: str = ""

    def name(self, **labels: object) -> str:
        return self.template.format(**labels)


class Metric(Frozen):
    """A concrete metric of one run: its name and what its family says about it."""

    name: str
    family: str
    unit: str = ""
    polarity: Polarity = Polarity.NEUTRAL
    kind: MetricKind = MetricKind.SCHEDULER
    description: str = ""


class Sample(Frozen):
    metric: Metric
    value: float


class MetricRegistry:
    """Metric families by key. Rejects duplicates; unknown keys list the known ones."""

    def __init__(self, defs: Iterable[MetricDef] = ()) -> None:
        self._defs: dict[str, MetricDef] = {}
        for d in defs:
            self.register(d)

    def register(self, d: MetricDef) -> MetricDef:
        if d.key in self._defs:
            raise DuplicateNameError("metric", d.key)
        self._defs[d.key] = d
        return d

    def get(self, key: str) -> MetricDef:
        try:
            return self._defs[key]
        except KeyError:
            raise UnknownNameError("metric", key, self._defs) from None

    def __iter__(self) -> Iterator[MetricDef]:
        return iter(self._defs.values())

    def __len__(self) -> int:
        return len(self._defs)

    def sample(self, key: str, value: float, **labels: object) -> Sample:
        d = self.get(key)
        return Sample(metric=Metric(name=d.name(**labels), family=d.key, unit=d.unit,
                                    polarity=d.polarity, kind=d.kind,
                                    description=d.description), value=value)


_H, _L, _N = Polarity.HIGHER_BETTER, Polarity.LOWER_BETTER, Polarity.NEUTRAL
_S, _P, _X = MetricKind.SCHEDULER, MetricKind.PAYLOAD, MetricKind.HARNESS

#: (key, template, unit, polarity, kind, description)
_DEFAULTS: tuple[tuple[str, str, str, Polarity, MetricKind, str], ...] = (
    ("work.units", "work.units", "units", _H, _S,
     "work units done by all workers (under TCG also bounded by the host's cores)"),
    ("work.cpu_s", "work.cpu_s", "s", _H, _S,
     "CPU time all workers got (schedstat run time): the work the scheduler let them do"),
    ("spread.max_pct", "spread.max_pct", "%", _L, _S,
     "worst per-cgroup spread of the workers' off-CPU % (max - min)"),
    ("gap.max_ms", "gap.max_ms", "ms", _L, _S, "longest gap between two work units, any worker"),
    ("wake.p99_max_us", "wake.p99_max_us", "us", _L, _S,
     "worst per-worker p99 wake-up latency (workers that sleep)"),
    ("cgroup.cpu_pct", "cgroup.{cgroup}.cpu_pct", "%", _H, _S,
     "mean over the cgroup's workers of time on a CPU / working window"),
    ("cgroup.share_pct", "cgroup.{cgroup}.share_pct", "%", _N, _S,
     "the cgroup's share of all workers' CPU time"),
    ("cgroup.wait_pct", "cgroup.{cgroup}.wait_pct", "%", _L, _S,
     "runnable but waiting (schedstat run delay) / working window, summed over workers"),
    ("cgroup.run_delay_us", "cgroup.{cgroup}.run_delay_us", "us", _L, _S,
     "schedstat run delay per timeslice (wait time / times it ran)"),
    ("cgroup.wakeups_per_s", "cgroup.{cgroup}.wakeups_per_s", "1/s", _N, _S,
     "voluntary context switches (sleeps, hence wake-ups) per second, per worker"),
    ("cgroup.migrations_per_s", "cgroup.{cgroup}.migrations_per_s", "1/s", _N, _S,
     "CPU migrations (se.nr_migrations) per second, per worker"),
    ("cgroup.work_units", "cgroup.{cgroup}.work_units", "units", _H, _S,
     "work units done by the cgroup's workers"),
    ("worker.cpu_pct", "worker.{cgroup}.{index}.cpu_pct", "%", _H, _S,
     "one worker's time on a CPU / its working window (cgroups of 2+ workers)"),
    ("worker.wait_pct", "worker.{cgroup}.{index}.wait_pct", "%", _L, _S,
     "one worker's run delay (schedstat wait) / its working window"),
    ("payload.metric", "payload.{payload}.{metric}", "", _N, _P,
     "a metric a payload printed (unit and polarity from its MetricHint)"),
    ("harness.boot_s", "harness.boot_s", "s", _L, _X, "QEMU start to the guest's init"),
    ("harness.attach_s", "harness.attach_s", "s", _L, _X,
     "scheduler start to sched_ext state=enabled"),
)


def default_metrics() -> MetricRegistry:
    """A fresh registry with ktstr's own metric families."""
    return MetricRegistry(MetricDef(key=k, template=t, unit=u, polarity=p, kind=kind,
                                    description=d) for k, t, u, p, kind, d in _DEFAULTS)


def payload_hints(payloads: Iterable[Payload]) -> dict[str, tuple[MetricHint, ...]]:
    """Payload name -> its declared metric hints (for ``extract``)."""
    return {p.name: p.metrics for p in payloads if p.metrics}


def _hinted(metrics: Mapping[str, float], hints: Sequence[MetricHint]
            ) -> list[tuple[str, float, MetricHint | None]]:
    """The metrics to compare: with hints, those matching a hint (``h`` or ``x.h``, the
    per-stressor ``x.h`` winning over a bare ``h`` alias); without, all of them."""
    if not hints:
        return [(k, v, None) for k, v in sorted(metrics.items())]
    out: list[tuple[str, float, MetricHint | None]] = []
    for h in hints:
        dotted = [k for k in metrics if k.endswith("." + h.name)]
        names = dotted or ([h.name] if h.name in metrics else [])
        out.extend((k, metrics[k], h) for k in sorted(names))
    return out


def _payload_samples(reg: MetricRegistry, payload: str, metrics: Mapping[str, Any],
                     hints: Mapping[str, Sequence[MetricHint]]) -> list[Sample]:
    numeric = {str(k): float(v) for k, v in metrics.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    d = reg.get("payload.metric")
    out: list[Sample] = []
    for name, value, hint in _hinted(numeric, hints.get(payload, ())):
        out.append(Sample(metric=Metric(
            name=d.name(payload=payload, metric=name), family=d.key,
            unit=hint.unit if hint else "", polarity=hint.polarity if hint else d.polarity,
            kind=d.kind, description=d.description), value=value))
    return out


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return scale * num / den if den > 0 else None


def _worker_samples(reg: MetricRegistry, workers: Sequence[Mapping[str, Any]]) -> list[Sample]:
    started = [w for w in workers if w.get("started") and (w.get("wall_ms") or 0) > 0]
    if not started:
        return []
    out: list[Sample] = [
        reg.sample("work.units", float(sum(int(w.get("work_units") or 0) for w in started))),
        reg.sample("work.cpu_s", sum(float(w.get("run_ms") or 0) for w in started) / 1000.0)]
    gaps = [float(w["max_gap_ms"]) for w in started if w.get("max_gap_ms") is not None]
    if gaps:
        out.append(reg.sample("gap.max_ms", max(gaps)))
    wakes = [float(w["wake_p99_us"]) for w in started if w.get("wake_p99_us") is not None]
    if wakes:
        out.append(reg.sample("wake.p99_max_us", max(wakes)))
    total_run = sum(float(w.get("run_ms") or 0) for w in started)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for w in started:
        groups.setdefault(str(w["cgroup"]), []).append(w)
    spreads: list[float] = []
    for cg, ws in sorted(groups.items()):
        wall = sum(float(w["wall_ms"]) for w in ws)
        run = sum(float(w.get("run_ms") or 0) for w in ws)
        wait = sum(float(w.get("wait_ms") or 0) for w in ws)
        slices = sum(int(w.get("timeslices") or 0) for w in ws)
        cpu = [100.0 * float(w.get("run_ms") or 0) / float(w["wall_ms"]) for w in ws]
        if len(cpu) >= 2:
            spreads.append(max(cpu) - min(cpu))
        wall_s = wall / 1000.0
        values: dict[str, float | None] = {
            "cgroup.cpu_pct": sum(cpu) / len(cpu),
            "cgroup.share_pct": _ratio(run, total_run, 100.0),
            "cgroup.wait_pct": _ratio(wait, wall, 100.0),
            "cgroup.run_delay_us": _ratio(wait * 1000.0, slices),
            "cgroup.wakeups_per_s": _ratio(sum(float(w.get("voluntary_switches") or 0)
                                               for w in ws), wall_s),
            "cgroup.migrations_per_s": _ratio(sum(float(w["migrations"]) for w in ws),
                                              wall_s)
            if all(w.get("migrations") is not None for w in ws) else None,
            "cgroup.work_units": float(sum(int(w.get("work_units") or 0) for w in ws)),
        }
        out.extend(reg.sample(k, v, cgroup=cg) for k, v in values.items() if v is not None)
        if len(ws) < 2:  # a lone worker's metrics are its cgroup's
            continue
        for w in sorted(ws, key=lambda w: int(w.get("index") or 0)):
            wwall = float(w["wall_ms"])
            out.append(reg.sample("worker.cpu_pct", 100.0 * float(w.get("run_ms") or 0) / wwall,
                                  cgroup=cg, index=w.get("index", 0)))
            out.append(reg.sample("worker.wait_pct",
                                  100.0 * float(w.get("wait_ms") or 0) / wwall,
                                  cgroup=cg, index=w.get("index", 0)))
    if spreads:
        out.append(reg.sample("spread.max_pct", max(spreads)))
    return out


def extract(run: RunResult, registry: MetricRegistry | None = None,
            hints: Mapping[str, Sequence[MetricHint]] | None = None) -> list[Sample]:
    """Every comparable metric of one run (pure). Unknown or absent sources give none."""
    reg = registry or default_metrics()
    hints = hints or {}
    out: list[Sample] = []
    scenario = run.stats.get("scenario") or {}
    out += _worker_samples(reg, scenario.get("workers") or [])
    payload = run.stats.get("payload") or {}
    if payload.get("name"):
        out += _payload_samples(reg, str(payload["name"]), payload.get("metrics") or {}, hints)
    for handle, p in sorted((scenario.get("payloads") or {}).items()):
        name = str(p.get("payload") or handle)
        out += _payload_samples(reg, name if name == handle else f"{name}.{handle}",
                                p.get("metrics") or {}, {f"{name}.{handle}":
                                                         hints.get(name, ()), **hints})
    for stressor, values in sorted((run.stats.get("stress_ng") or {}).items()):
        flat = {f"{stressor}.{k}": v for k, v in values.items()}
        out += _payload_samples(reg, "stress-ng", flat, hints)
    if run.timings.boot_s is not None:
        out.append(reg.sample("harness.boot_s", run.timings.boot_s))
    if run.timings.attach_s is not None:
        out.append(reg.sample("harness.attach_s", run.timings.attach_s))
    return out


#: markers around the generated metric table in docs/compare.md
TABLE_START = "<!-- metrics table: generated by scripts/gen_reference.py -->"
TABLE_END = "<!-- end of metrics table -->"


def metrics_table(registry: MetricRegistry | None = None) -> str:
    """The metric families as a markdown table (docs/compare.md)."""
    reg = registry or default_metrics()
    rows = ["| metric | unit | better | kind | what |", "|---|---|---|---|---|"]
    better = {Polarity.HIGHER_BETTER: "higher", Polarity.LOWER_BETTER: "lower",
              Polarity.NEUTRAL: "-"}
    for d in reg:
        rows.append(f"| `{d.template}` | {d.unit or '-'} | {better[d.polarity]} | "
                    f"{d.kind.value} | {d.description} |")
    return "\n".join(rows) + "\n"


def with_metrics_table(doc: str, registry: MetricRegistry | None = None) -> str:
    """``doc`` with the text between the table markers replaced by ``metrics_table``."""
    head, sep, rest = doc.partition(TABLE_START)
    _, sep2, tail = rest.partition(TABLE_END)
    if not sep or not sep2:
        raise ValueError("the document has no metrics table markers")
    return f"{head}{TABLE_START}\n{metrics_table(registry)}{TABLE_END}{tail}"
