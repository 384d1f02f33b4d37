"""The verifier sweep's cells, pure: scheduler x kernel x topology.

``expand_verifier_cells`` takes what the operator asked for (schedulers already narrowed
by ``--scheduler``, the kernels ``--kernel`` resolved to, the presets) and returns every
cell plus the reason each left-out combination was left out:

- a scheduler without a binary (EEVDF, kernel-builtin) has nothing to verify;
- a kernel must pass the scheduler's ``kernels`` filter, matched against the kernel as
  it resolved (version, release, cache key; ``ktstr.kernel.id.filter_matches_kernel``),
  never against the ``--kernel`` text it came from, and must have sched_ext;
- a preset must be accepted by the scheduler's constraints on this host (an explicit
  ``--topology`` is taken as given, only checked against the host).

Cell ids are ``verifier/<scheduler>/<kernel version>/<preset>``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.presets import PRESETS, Preset
from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import HostCapacity, Topology, host_fits
from ktstr.kernel.id import (
    KernelId,
    KernelKind,
    ResolvedKernel,
    filter_accepts_kernel,
    sanitize_label,
    version_key,
)
from ktstr.sweep.runner import SweepCell

KIND = "verifier"


class KernelEntry(Frozen):
    """One kernel of the sweep: the spec it came from and what it resolved to."""

    spec: str
    version: str
    key: str
    release: str = ""
    sched_ext: bool = True

    @property
    def series(self) -> str:
        major, minor, *_ = version_key(self.version)
        return f"{major}.{minor}"

    @property
    def from_version_spec(self) -> bool:
        """Whether it came from a version or range (else a path, cache key or git)."""
        return KernelId.parse(self.spec).kind in (KernelKind.VERSION, KernelKind.RANGE)

    @property
    def resolved(self) -> ResolvedKernel:
        return ResolvedKernel(version=self.version, release=self.release, key=self.key,
                              source_spec="" if self.from_version_spec else self.spec)

    @property
    def command_spec(self) -> str:
        """The ``--kernel`` value that names exactly this kernel again: its version when
        it came from a version or range, else the path, cache key or git spec."""
        return self.version if self.from_version_spec else self.spec


class VerifierCell(SweepCell):
    scheduler: str
    kernel: KernelEntry
    preset: str = Field(description="preset name, or the topology label for --topology")
    topology: Topology
    build_series: str = Field(description="series of the scheduler build to load (7.2)")

    @property
    def id(self) -> str:
        return f"{KIND}/{self.scheduler}/{sanitize_label(self.kernel.version)}/{self.preset}"

    @property
    def cost(self) -> int:
        """One host CPU: the guest runs one program at a time (``VERIFY_HOST_CPUS`` in
        ``ktstr.sweep.execute``); a cell that must boot cold first waits for its vCPUs'
        worth of machine-wide tokens in ``ktstr.run.boot``."""
        return 1

    @property
    def pinned_build(self) -> bool:
        """Whether the scheduler build is not the kernel's own series."""
        return self.build_series != self.kernel.series


class Exclusion(Frozen):
    """A combination that produced no cell, and why."""

    scheduler: str
    kernel: str = ""
    preset: str = ""
    reason: str


class CellPlan(Frozen):
    cells: list[VerifierCell] = Field(default_factory=list)
    excluded: list[Exclusion] = Field(default_factory=list)


def topology_choices(presets: Sequence[str], topologies: Sequence[str]) -> list[Preset] | None:
    """``--preset``/``--topology`` as presets (a topology becomes a preset named by its
    label); None when neither was given (every preset the scheduler accepts)."""
    if not presets and not topologies:
        return None
    from ktstr.declare.presets import preset

    chosen = [preset(p) for p in presets]
    for text in topologies:
        topo = Topology.parse(text)
        chosen.append(Preset(name=topo.label, topology=topo, description="--topology"))
    return chosen


def expand_verifier_cells(
    schedulers: Sequence[Scheduler],
    kernels: Sequence[KernelEntry],
    host: HostCapacity,
    *,
    presets: Sequence[Preset] | None = None,
    build_series: str | None = None,
) -> CellPlan:
    """Every verifier cell, in scheduler, kernel, preset order (see the module doc)."""
    explicit = presets is not None
    choices = list(presets) if presets is not None else list(PRESETS)
    cells: list[VerifierCell] = []
    excluded: list[Exclusion] = []
    for sched in schedulers:
        if not sched.binary.has_binary:
            excluded.append(Exclusion(scheduler=sched.name, reason=(
                f"{sched.binary.describe()} has no BPF programs of its own to verify")))
            continue
        for k in kernels:
            if not filter_accepts_kernel(sched.kernels, k.resolved):
                excluded.append(Exclusion(scheduler=sched.name, kernel=k.version, reason=(
                    f"excluded by the scheduler's kernels filter {list(sched.kernels)}")))
                continue
            if not k.sched_ext:
                excluded.append(Exclusion(scheduler=sched.name, kernel=k.version, reason=(
                    "the kernel has no sched_ext (CONFIG_SCHED_CLASS_EXT is not set)")))
                continue
            for p in choices:
                if explicit and p.description == "--topology":
                    ok = host_fits(p.topology, host)
                else:
                    ok = sched.constraints.accepts(p.topology, host)
                if not ok:
                    excluded.append(Exclusion(scheduler=sched.name, kernel=k.version,
                                              preset=p.name, reason=ok.reason))
                    continue
                cells.append(VerifierCell(
                    scheduler=sched.name, kernel=k, preset=p.name, topology=p.topology,
                    build_series=build_series or k.series))
    return CellPlan(cells=cells, excluded=excluded)


class MatrixFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    GITHUB = "github-matrix"
    GITLAB = "gitlab"


def cell_command(cell: VerifierCell, declaration_modules: Sequence[str] = ()) -> list[str]:
    """The ``ktstr verifier`` command line that runs exactly this cell."""
    argv = ["ktstr"]
    for mod in declaration_modules:
        argv += ["-d", mod]
    argv += ["verifier", "--kernel", cell.kernel.command_spec, "--scheduler", cell.scheduler]
    if cell.preset == cell.topology.label:
        t = cell.topology
        argv += ["--topology", f"{t.numa_nodes},{t.llcs},{t.cores_per_llc},{t.threads_per_core}"]
    else:
        argv += ["--preset", cell.preset]
    if cell.pinned_build:
        argv += ["--build-series", cell.build_series]
    return argv


def ci_matrix(cells: Sequence[VerifierCell], fmt: MatrixFormat,
              declaration_modules: Sequence[str] = ()) -> str:
    """The cells as a CI matrix: one job per cell, each with the command to run it.

    ``github-matrix`` prints ``{"include": [...]}`` for ``strategy.matrix: ${{ fromJSON(...) }}``;
    ``gitlab`` prints ``parallel: matrix:`` YAML (GitLab takes lists of values per key).
    """
    import shlex

    rows = [{"id": c.id, "scheduler": c.scheduler, "kernel": c.kernel.version,
             "preset": c.preset, "build_series": c.build_series,
             "command": shlex.join(cell_command(c, declaration_modules))} for c in cells]
    if fmt is MatrixFormat.GITHUB:
        return json.dumps({"include": rows}, separators=(",", ":"))
    if fmt is MatrixFormat.GITLAB:
        import yaml

        matrix = [{"KTSTR_CELL": [r["id"]], "KTSTR_CELL_COMMAND": [r["command"]]} for r in rows]
        return str(yaml.safe_dump({"parallel": {"matrix": matrix}}, sort_keys=False,
                                  width=1000))
    if fmt is MatrixFormat.JSON:
        return json.dumps(rows, indent=2)
    return "\n".join(r["id"] for r in rows)
