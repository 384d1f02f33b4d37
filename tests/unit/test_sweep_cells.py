"""Verifier cell expansion (pure) and the CI matrices built from it."""

from __future__ import annotations

import json

import pytest
import yaml

from ktstr import HostCapacity, Scheduler, SchedulerSpec, TopologyConstraints, preset
from ktstr.declare.scheduler import EEVDF
from ktstr.errors import UnknownNameError
from ktstr.sweep.cells import (
    KernelEntry,
    MatrixFormat,
    cell_command,
    ci_matrix,
    expand_verifier_cells,
    topology_choices,
)

BIG_HOST = HostCapacity(cpus=512, memory_mb=1 << 20)
K72 = KernelEntry(spec="7.2", version="7.2.13", key="7.2.13+deb14-amd64")
K73 = KernelEntry(spec="7.3", version="7.3.4", key="7.3.4+deb13-amd64")
K612 = KernelEntry(spec="6.12", version="6.12.117", key="6.12.117+deb12-amd64",
                   sched_ext=False)
SIMPLE = Scheduler(name="scx_simple")
TWO = topology_choices(["tiny-1llc", "smt-2llc"], [])


def ids(plan: object) -> list[str]:
    return [c.id for c in plan.cells]  # type: ignore[attr-defined]


def test_scheduler_x_kernel_x_preset_with_stable_ids() -> None:
    plan = expand_verifier_cells([SIMPLE], [K72, K73], BIG_HOST, presets=TWO)
    assert ids(plan) == [
        "verifier/scx_simple/7.2.13/tiny-1llc", "verifier/scx_simple/7.2.13/smt-2llc",
        "verifier/scx_simple/7.3.4/tiny-1llc", "verifier/scx_simple/7.3.4/smt-2llc",
    ]
    assert [c.build_series for c in plan.cells] == ["7.2", "7.2", "7.3", "7.3"]
    # one program at a time in the guest: one host CPU whatever the topology
    assert plan.cells[1].cost == 1 and plan.cells[1].topology.label == "1n2l2c2t"
    assert not plan.excluded


def test_kernels_filter_excluding_7_3_emits_no_7_3_cells() -> None:
    only72 = Scheduler(name="old_sched", kernels=["7.2"])
    ranged = Scheduler(name="ranged", kernels=["7.0..=7.2"])
    plan = expand_verifier_cells([only72, ranged], [K72, K73], BIG_HOST, presets=TWO)
    assert all("/7.3.4/" not in i for i in ids(plan))
    assert len(plan.cells) == 4
    reasons = {(e.scheduler, e.kernel): e.reason for e in plan.excluded}
    assert "kernels filter ['7.2']" in reasons[("old_sched", "7.3.4")]
    assert ("ranged", "7.3.4") in reasons


def test_filter_matches_the_resolved_version_of_a_range_spec() -> None:
    from_range = KernelEntry(spec="7.2..=7.3", version="7.2.13", key="k")
    sched = Scheduler(name="s", kernels=["7.2.13"])
    plan = expand_verifier_cells([sched], [from_range], BIG_HOST, presets=TWO)
    assert len(plan.cells) == 2


def test_eevdf_builtin_and_no_sched_ext_kernels_emit_nothing() -> None:
    builtin = Scheduler(name="minlat", binary=SchedulerSpec.kernel_builtin(
        enable=["echo minlat > /sys/kernel/debug/sched/ext/root/ops"]))
    plan = expand_verifier_cells([EEVDF, builtin, SIMPLE], [K612, K72], BIG_HOST,
                                 presets=TWO)
    assert {c.scheduler for c in plan.cells} == {"scx_simple"}
    assert {c.kernel.version for c in plan.cells} == {"7.2.13"}
    why = {(e.scheduler, e.kernel): e.reason for e in plan.excluded}
    assert "no BPF programs" in why[("eevdf", "")]
    assert "no BPF programs" in why[("minlat", "")]
    assert "no sched_ext" in why[("scx_simple", "6.12.117")]


def test_default_presets_follow_constraints_and_host() -> None:
    pair = Scheduler(name="scx_pair", constraints=TopologyConstraints(requires_smt=True))
    plan = expand_verifier_cells([pair], [K72], BIG_HOST)
    assert plan.cells and all(c.topology.has_smt for c in plan.cells)
    small = HostCapacity(cpus=2, memory_mb=24000)
    plan_small = expand_verifier_cells([SIMPLE], [K72], small)
    assert all(c.topology.total_cpus <= 32 for c in plan_small.cells)
    assert any("host cannot hold" in e.reason for e in plan_small.excluded)


def test_explicit_topology_is_a_preset_named_by_its_label() -> None:
    central = Scheduler(name="scx_central", constraints=TopologyConstraints(min_cpus=4))
    choices = topology_choices([], ["1,1,2,1"])
    plan = expand_verifier_cells([central], [K72], BIG_HOST, presets=choices)
    assert ids(plan) == ["verifier/scx_central/7.2.13/1n1l2c1t"]
    with pytest.raises(UnknownNameError, match="tiny-1llc"):
        topology_choices(["tiny"], [])


def test_pinned_build_series_is_explicit_in_cell_and_command() -> None:
    plan = expand_verifier_cells([SIMPLE], [K72, K73], BIG_HOST,
                                 presets=[preset("tiny-1llc")], build_series="7.2")
    c73 = plan.cells[1]
    assert c73.build_series == "7.2" and c73.pinned_build
    assert not plan.cells[0].pinned_build
    assert cell_command(c73, ["mymod"]) == [
        "ktstr", "-d", "mymod", "verifier", "--kernel", "7.3.4", "--scheduler", "scx_simple",
        "--preset", "tiny-1llc", "--build-series", "7.2"]
    topo_cell = expand_verifier_cells([SIMPLE], [K72], BIG_HOST,
                                      presets=topology_choices([], ["1n2l2c1t"])).cells[0]
    assert "--topology" in cell_command(topo_cell) and "1,2,2,1" in cell_command(topo_cell)


def test_ci_matrices() -> None:
    cells = expand_verifier_cells([SIMPLE], [K72, K73], BIG_HOST, presets=TWO).cells
    gh = json.loads(ci_matrix(cells, MatrixFormat.GITHUB))
    assert len(gh["include"]) == 4
    assert gh["include"][0] == {
        "id": "verifier/scx_simple/7.2.13/tiny-1llc", "scheduler": "scx_simple",
        "kernel": "7.2.13", "preset": "tiny-1llc", "build_series": "7.2",
        "command": "ktstr verifier --kernel 7.2.13 --scheduler scx_simple --preset tiny-1llc"}
    gl = yaml.safe_load(ci_matrix(cells, MatrixFormat.GITLAB))
    assert len(gl["parallel"]["matrix"]) == 4
    assert gl["parallel"]["matrix"][3]["KTSTR_CELL"] == ["verifier/scx_simple/7.3.4/smt-2llc"]
    assert ci_matrix(cells, MatrixFormat.TEXT).splitlines()[2].endswith("7.3.4/tiny-1llc")
