"""Gauntlet presets as data, and the constraints that select among them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktstr import PRESETS, HostCapacity, Topology, TopologyConstraints, UserError, preset
from ktstr.declare.topology import host_fits

#: the names and shapes ktstr users know (issue 2)
EXPECTED = {
    "tiny-1llc": "1n1l4c1t",
    "tiny-2llc": "1n2l2c1t",
    "odd-3llc": "1n3l3c1t",
    "odd-5llc": "1n5l3c1t",
    "odd-7llc": "1n7l2c1t",
    "smt-2llc": "1n2l2c2t",
    "smt-3llc": "1n3l2c2t",
    "medium-4llc": "1n4l4c2t",
    "medium-8llc": "1n8l4c2t",
    "large-4llc": "1n4l16c2t",
    "large-8llc": "1n8l8c2t",
    "near-max-llc": "1n15l8c2t",
    "max-cpu": "1n14l9c2t",
    "medium-4llc-nosmt": "1n4l8c1t",
    "medium-8llc-nosmt": "1n8l8c1t",
    "large-4llc-nosmt": "1n4l32c1t",
    "large-8llc-nosmt": "1n8l16c1t",
    "near-max-llc-nosmt": "1n15l16c1t",
    "max-cpu-nosmt": "1n14l18c1t",
    "numa2-4llc": "2n4l4c1t",
    "numa2-8llc": "2n8l8c2t",
    "numa2-8llc-nosmt": "2n8l16c1t",
    "numa4-8llc": "4n8l4c1t",
    "numa4-12llc": "4n12l8c2t",
}

#: a host big enough for every preset, so only the constraints decide
BIG_HOST = HostCapacity(cpus=512, memory_mb=1 << 20)


def test_exactly_the_24_known_presets_in_order() -> None:
    assert len(PRESETS) == 24
    assert [p.name for p in PRESETS] == list(EXPECTED)
    assert {p.name: p.topology.label for p in PRESETS} == EXPECTED


@pytest.mark.parametrize(
    ("name", "cpus"),
    [
        ("tiny-1llc", 4),
        ("odd-3llc", 9),
        ("smt-3llc", 12),
        ("large-4llc", 128),
        ("near-max-llc", 240),
        ("max-cpu", 252),
        ("max-cpu-nosmt", 252),
        ("numa2-4llc", 16),
        ("numa4-12llc", 192),
    ],
)
def test_cpu_counts(name: str, cpus: int) -> None:
    assert preset(name).cpus == cpus == preset(name).topology.total_cpus


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown preset 'huge'; known presets: ") as info:
        preset("huge")
    assert "tiny-1llc" in str(info.value)
    assert "numa4-12llc" in str(info.value)


def test_default_constraints_make_numa_and_near_max_presets_opt_in() -> None:
    default = TopologyConstraints()
    assert (default.max_numa_nodes, default.max_llcs, default.max_cpus) == (1, 12, 192)
    refused = {p.name for p in PRESETS if not default.accepts(p.topology, BIG_HOST)}
    assert refused == {
        "numa2-4llc",
        "numa2-8llc",
        "numa2-8llc-nosmt",
        "numa4-8llc",
        "numa4-12llc",
        "near-max-llc",
        "near-max-llc-nosmt",
        "max-cpu",
        "max-cpu-nosmt",
    }


def test_opting_in_to_numa() -> None:
    numa = TopologyConstraints(max_numa_nodes=4, max_llcs=16, max_cpus=256)
    accepted = {p.name for p in PRESETS if numa.accepts(p.topology, BIG_HOST)}
    assert {"numa2-4llc", "numa4-12llc", "near-max-llc", "max-cpu"} <= accepted
    assert len(accepted) == 24


@pytest.mark.parametrize(
    ("constraints", "topology", "reason"),
    [
        (TopologyConstraints(min_llcs=2), Topology(1, 1, 2, 1), "1 LLCs < min_llcs 2"),
        (TopologyConstraints(max_llcs=2), Topology(1, 3, 1, 1), "3 LLCs > max_llcs 2"),
        (TopologyConstraints(min_cpus=4), Topology(1, 1, 2, 1), "2 CPUs < min_cpus 4"),
        (TopologyConstraints(max_cpus=4), Topology(1, 1, 8, 1), "8 CPUs > max_cpus 4"),
        (
            TopologyConstraints(min_numa_nodes=2, max_numa_nodes=2),
            Topology(1, 2, 2, 1),
            "1 NUMA nodes < min_numa_nodes 2",
        ),
        (TopologyConstraints(), Topology(2, 2, 2, 1), "2 NUMA nodes > max_numa_nodes 1"),
        (TopologyConstraints(requires_smt=True), Topology(1, 1, 2, 1), "requires_smt"),
    ],
)
def test_each_constraint_refuses_with_its_reason(
    constraints: TopologyConstraints, topology: Topology, reason: str
) -> None:
    verdict = constraints.accepts(topology)
    assert not verdict
    assert reason in verdict.reason


def test_accepts_inside_the_bounds() -> None:
    verdict = TopologyConstraints(requires_smt=True, min_cpus=4).accepts(Topology(1, 1, 2, 2))
    assert verdict
    assert verdict.reason == ""


def test_constraint_bounds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match=r"min_llcs \(5\) is greater than max_llcs \(2\)"):
        TopologyConstraints(min_llcs=5, max_llcs=2)
    with pytest.raises(ValidationError, match=r"min_cpus \(9\) is greater than max_cpus \(8\)"):
        TopologyConstraints(min_cpus=9, max_cpus=8)


def test_accepts_refuses_what_the_host_cannot_hold_vcpus() -> None:
    small = HostCapacity(cpus=2, memory_mb=1 << 20, vcpu_overcommit=4)
    assert small.max_vcpus == 8
    assert TopologyConstraints().accepts(preset("tiny-2llc").topology, small)
    verdict = TopologyConstraints().accepts(preset("smt-3llc").topology, small)
    assert not verdict
    assert "host cannot hold 12 vCPUs" in verdict.reason
    assert "KTSTR_VCPU_OVERCOMMIT" in verdict.reason


def test_accepts_refuses_what_the_host_cannot_hold_memory() -> None:
    tight = HostCapacity(cpus=64, memory_mb=1500)
    assert host_fits(Topology(1, 1, 2, 1), tight)  # the 1 GiB floor
    verdict = TopologyConstraints().accepts(Topology(1, 1, 32, 1), tight)  # 2 GiB
    assert not verdict
    assert verdict.reason == "host cannot hold 2048 MiB of guest memory (1500 MiB available)"


def test_constraints_are_checked_before_the_host() -> None:
    verdict = TopologyConstraints().accepts(Topology(2, 2, 2, 1), HostCapacity(cpus=1, memory_mb=1))
    assert "max_numa_nodes" in verdict.reason


def test_detect_reads_the_overcommit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTSTR_VCPU_OVERCOMMIT", "3")
    host = HostCapacity.detect()
    assert host.vcpu_overcommit == 3
    assert host.cpus >= 1
    assert host.max_vcpus == host.cpus * 3


@pytest.mark.parametrize("value", ["lots", "0", "-2"])
def test_detect_rejects_a_bad_overcommit(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KTSTR_VCPU_OVERCOMMIT", value)
    with pytest.raises(UserError, match=f"KTSTR_VCPU_OVERCOMMIT='{value}' is invalid"):
        HostCapacity.detect()
