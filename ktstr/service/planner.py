"""Pure planning: a submitted plan document becomes a validated ``Plan`` and a list of
``Cell`` jobs (one per cell x repeat). Every error names the field path it is about."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from ktstr._problems import problem_lines
from ktstr.contract import Cell, CellKind
from ktstr.declare.presets import preset
from ktstr.declare.topology import Topology
from ktstr.errors import UserError
from ktstr.kernel.id import KernelId
from ktstr.service.plan import Plan, Run

#: the most jobs one plan may expand to
MAX_JOBS = 100_000


class PlanError(UserError):
    """A plan that cannot be run; each problem is ``field.path: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid plan: " + "; ".join(problems))


def parse_plan(document: Any) -> Plan:
    """Validate a plan document (the parsed YAML/JSON)."""
    if not isinstance(document, Mapping):
        raise PlanError([f"(plan): expected a mapping, got {type(document).__name__}"])
    try:
        return Plan.model_validate(dict(document))
    except ValidationError as exc:
        raise PlanError(problem_lines(exc)) from exc


def _topologies(run: Run, where: str, problems: list[str]) -> list[tuple[str, Topology]]:
    out: list[tuple[str, Topology]] = []
    for i, text in enumerate(run.topologies):
        try:
            out.append(("", Topology.parse(text)))
        except UserError as exc:
            problems.append(f"{where}.topologies[{i}]: {exc}")
    for i, name in enumerate(run.presets):
        try:
            out.append((name, preset(name).topology))
        except UserError as exc:
            problems.append(f"{where}.presets[{i}]: {exc}")
    if not run.topologies and not run.presets:
        problems.append(f"{where}: give at least one of topologies or presets")
    return out


def expand(plan: Plan, sutclasses: Collection[str]) -> list[Cell]:
    """The plan's jobs in submission order. Raises ``PlanError`` naming field paths."""
    problems: list[str] = []
    if plan.sut.sutclass not in sutclasses:
        known = ", ".join(sorted(sutclasses)) or "(none configured)"
        problems.append(f"sut.sutclass: unknown SUT class {plan.sut.sutclass!r}; "
                        f"known: {known}")
    cells: list[Cell] = []
    for r, run in enumerate(plan.runs):
        where = f"runs[{r}]"
        for i, k in enumerate(run.kernels):
            try:
                KernelId.parse(k)
            except UserError as exc:
                problems.append(f"{where}.kernels[{i}]: {exc}")
        topologies = _topologies(run, where, problems)
        repeats = run.repeats or plan.defaults.repeats
        timeout = run.timeout or plan.defaults.timeout
        duration = run.duration or plan.defaults.duration
        if duration > timeout:
            problems.append(f"{where}.duration: {duration:g}s is longer than the timeout "
                            f"({timeout:g}s); raise the timeout or shorten the duration")
        kind = CellKind.VERIFIER if run.verifier else CellKind.TEST
        tests: list[str | None] = list(run.tests) if run.tests else [None]
        size = len(run.kernels) * len(run.schedulers) * len(topologies) * len(tests) * repeats
        if len(cells) + size > MAX_JOBS:
            problems.append(f"{where}: expands to more than {MAX_JOBS} jobs")
            continue
        for kernel in run.kernels:
            for sched in run.schedulers:
                for preset_name, topo in topologies:
                    for test in tests:
                        for rep in range(repeats):
                            cells.append(Cell(
                                kind=kind, kernel=kernel, scheduler=sched,
                                topology=(f"{topo.numa_nodes},{topo.llcs},"
                                          f"{topo.cores_per_llc},{topo.threads_per_core}"),
                                topology_label=topo.label, preset=preset_name or None,
                                test=test, repeat=rep, duration_s=duration,
                                timeout_s=timeout,
                            ))
    if problems:
        raise PlanError(problems)
    if not cells:
        raise PlanError(["runs: the plan expands to no jobs"])
    return cells
