"""Topology: defaults, label, validation, parsing, inheritance, CPU numbering, memory."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktstr import DEFAULT_TOPOLOGY, Scheduler, Topology, UserError
from ktstr.declare.topology import vm_memory_mb


def test_default_is_one_node_one_llc_two_cores_one_thread() -> None:
    assert Topology() == Topology(1, 1, 2, 1) == DEFAULT_TOPOLOGY
    assert Scheduler(name="s").topology == Topology(1, 1, 2, 1)
    assert DEFAULT_TOPOLOGY.total_cpus == 2


def test_label_spells_every_dimension() -> None:
    assert Topology(1, 2, 4, 1).label == "1n2l4c1t"
    assert str(Topology(4, 12, 8, 2)) == "4n12l8c2t"


def test_positional_and_keyword_forms_agree() -> None:
    assert Topology(2, 4, 3, 2) == Topology(
        numa_nodes=2, llcs=4, cores_per_llc=3, threads_per_core=2
    )


def test_too_many_positional_values_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="at most 4 positional"):
        Topology(1, 1, 1, 1, 1)  # type: ignore[call-arg]


def test_llcs_must_be_a_multiple_of_numa_nodes() -> None:
    with pytest.raises(ValidationError, match=r"llcs \(3\) must be a multiple of numa_nodes \(2\)"):
        Topology(2, 3, 2, 1)
    assert Topology(2, 4, 2, 1).llcs_per_node == 2


@pytest.mark.parametrize("field", ["numa_nodes", "llcs", "cores_per_llc", "threads_per_core"])
def test_every_dimension_is_at_least_one(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Topology(**{field: 0})


def test_topology_is_frozen() -> None:
    t = Topology(1, 2, 2, 1)
    with pytest.raises(ValidationError, match="frozen"):
        t.llcs = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2,4,1", Topology(1, 2, 4, 1)),
        (" 2, 4, 2, 2 ", Topology(2, 4, 2, 2)),
        ("1n2l4c1t", Topology(1, 2, 4, 1)),
        ("4n12l8c2t", Topology(4, 12, 8, 2)),
    ],
)
def test_parse_accepts_numbers_and_labels(text: str, expected: Topology) -> None:
    assert Topology.parse(text) == expected
    assert Topology.parse(expected.label) == expected


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("1,2,4", "use N,L,C,T"),
        ("banana", "use N,L,C,T"),
        ("1,2,x,1", "use N,L,C,T"),
        ("1n2l4c", "label such as 1n2l2c1t"),
        ("2,3,2,1", r"llcs \(3\) must be a multiple of numa_nodes \(2\)"),
        ("0,1,1,1", "numa_nodes: 0 is invalid"),
    ],
)
def test_parse_rejects_with_a_readable_message(text: str, rule: str) -> None:
    with pytest.raises(UserError, match=rule) as info:
        Topology.parse(text)
    assert f"bad topology {text!r}" in str(info.value)
    assert "errors.pydantic.dev" not in str(info.value)


def test_coerce_accepts_a_tuple_a_string_or_a_topology() -> None:
    t = Topology(1, 2, 2, 1)
    assert Topology.coerce((1, 2, 2, 1)) == t
    assert Topology.coerce([1, 2, 2, 1]) == t
    assert Topology.coerce("1n2l2c1t") == t
    assert Topology.coerce(t) is t
    with pytest.raises(UserError, match="4 values, got 2"):
        Topology.coerce((1, 2))


def test_with_overrides_replaces_only_what_is_given() -> None:
    base = Topology(1, 2, 4, 1)
    assert base.with_overrides() == base
    assert base.with_overrides(threads_per_core=2) == Topology(1, 2, 4, 2)
    assert base.with_overrides(llcs=4, cores_per_llc=2) == Topology(1, 4, 2, 1)
    assert base.with_overrides(numa_nodes=2) == Topology(2, 2, 4, 1)


def test_with_overrides_rejects_an_invalid_result() -> None:
    with pytest.raises(UserError, match=r"topology 1n2l4c1t with numa_nodes=3 is invalid: llcs"):
        Topology(1, 2, 4, 1).with_overrides(numa_nodes=3)


def test_tests_inherit_unset_dimensions_from_the_scheduler() -> None:
    # seed: "Inherits llcs=2, cores=4 from MITOSIS; overrides threads to 2"
    mitosis = Scheduler(name="scx_mitosis", topology=(1, 2, 4, 1))
    assert mitosis.resolve_topology() == Topology(1, 2, 4, 1)
    assert mitosis.resolve_topology(threads=2) == Topology(1, 2, 4, 2)
    assert mitosis.resolve_topology(llcs=3, cores=1) == Topology(1, 3, 1, 1)
    assert mitosis.resolve_topology(numa_nodes=2, llcs=4) == Topology(2, 4, 4, 1)


def test_cpu_counts() -> None:
    t = Topology(2, 4, 3, 2)
    assert t.llcs_per_node == 2
    assert t.cpus_per_llc == 6
    assert t.cpus_per_node == 12
    assert t.total_cpus == 24
    assert t.has_smt
    assert not Topology(1, 1, 4, 1).has_smt


def test_cpu_numbering_is_llc_major_then_core_then_thread() -> None:
    t = Topology(2, 4, 3, 2)
    assert t.cpu_id(0, 0, 0) == 0
    assert t.cpu_id(0, 0, 1) == 1
    assert t.cpu_id(0, 1, 0) == 2
    assert t.cpu_id(1, 0, 0) == 6
    assert t.cpu_id(3, 2, 1) == t.total_cpus - 1
    assert t.llc_cpus(1) == [6, 7, 8, 9, 10, 11]
    assert t.node_cpus(1) == list(range(12, 24))
    every = [t.cpu_id(llc, c, th) for llc in range(4) for c in range(3) for th in range(2)]
    assert every == list(range(t.total_cpus))
    assert [c for n in range(t.numa_nodes) for c in t.node_cpus(n)] == every


@pytest.mark.parametrize(
    ("topology", "requested", "expected"),
    [
        (Topology(1, 1, 2, 1), None, 1024),  # floor
        (Topology(1, 4, 4, 2), None, 32 * 64),  # 64 MiB per CPU
        (Topology(1, 1, 2, 1), 2000, 2000),  # explicit request above the rule
        (Topology(1, 4, 4, 2), 100, 32 * 64),  # a small request does not shrink it
        (Topology(4, 4, 1, 1), 4001, 4004),  # rounded up to a multiple of the node count
        (Topology(2, 2, 3, 1), 2001, 2002),
    ],
)
def test_vm_memory_mb(topology: Topology, requested: int | None, expected: int) -> None:
    mb = vm_memory_mb(topology, requested)
    assert mb == expected
    assert mb % topology.numa_nodes == 0
