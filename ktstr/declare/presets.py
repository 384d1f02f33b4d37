"""Gauntlet topology presets (x86_64), as data."""

from __future__ import annotations

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology
from ktstr.errors import UnknownNameError


class Preset(Frozen):
    name: str
    topology: Topology
    description: str = ""

    @property
    def cpus(self) -> int:
        return self.topology.total_cpus


def _p(name: str, label: str, description: str) -> Preset:
    return Preset(name=name, topology=Topology.parse(label), description=description)


PRESETS: tuple[Preset, ...] = (
    _p("tiny-1llc", "1n1l4c1t", "smallest useful machine: one LLC, four cores"),
    _p("tiny-2llc", "1n2l2c1t", "two LLCs of two cores"),
    _p("odd-3llc", "1n3l3c1t", "odd LLC and core counts"),
    _p("odd-5llc", "1n5l3c1t", "five LLCs of three cores"),
    _p("odd-7llc", "1n7l2c1t", "seven LLCs of two cores"),
    _p("smt-2llc", "1n2l2c2t", "SMT pairs across two LLCs"),
    _p("smt-3llc", "1n3l2c2t", "SMT pairs across three LLCs"),
    _p("medium-4llc", "1n4l4c2t", "mid-size SMT server"),
    _p("medium-8llc", "1n8l4c2t", "many small SMT LLCs"),
    _p("large-4llc", "1n4l16c2t", "few large SMT LLCs"),
    _p("large-8llc", "1n8l8c2t", "large SMT server"),
    _p("near-max-llc", "1n15l8c2t", "near the default LLC limit"),
    _p("max-cpu", "1n14l9c2t", "near the CPU limit, SMT"),
    _p("medium-4llc-nosmt", "1n4l8c1t", "mid-size server without SMT"),
    _p("medium-8llc-nosmt", "1n8l8c1t", "many LLCs without SMT"),
    _p("large-4llc-nosmt", "1n4l32c1t", "few large LLCs without SMT"),
    _p("large-8llc-nosmt", "1n8l16c1t", "large server without SMT"),
    _p("near-max-llc-nosmt", "1n15l16c1t", "near the LLC limit without SMT"),
    _p("max-cpu-nosmt", "1n14l18c1t", "near the CPU limit without SMT"),
    _p("numa2-4llc", "2n4l4c1t", "two NUMA nodes"),
    _p("numa2-8llc", "2n8l8c2t", "two NUMA nodes, SMT"),
    _p("numa2-8llc-nosmt", "2n8l16c1t", "two NUMA nodes without SMT"),
    _p("numa4-8llc", "4n8l4c1t", "four NUMA nodes"),
    _p("numa4-12llc", "4n12l8c2t", "four NUMA nodes, SMT"),
)

_BY_NAME = {p.name: p for p in PRESETS}


def preset(name: str) -> Preset:
    """The preset called ``name``; unknown names list the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownNameError("preset", name, _BY_NAME) from None
