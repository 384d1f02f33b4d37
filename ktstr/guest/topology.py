"""What topology the guest saw, and how it differs from what was asked for."""

from __future__ import annotations

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology
from ktstr.vm.argv import REMOTE_DISTANCE


def parse_cpulist(text: str) -> list[int]:
    """``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11]; ``-`` or empty -> []."""
    out: list[int] = []
    text = text.strip()
    if text in ("", "-"):
        return out
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def format_cpulist(cpus: list[int]) -> str:
    if not cpus:
        return "-"
    cpus = sorted(cpus)
    parts: list[str] = []
    start = prev = cpus[0]
    for c in [*cpus[1:], -2]:
        if c == prev + 1:
            prev = c
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = c
    return ",".join(parts)


class SeenCpu(Frozen):
    cpu: int
    package: int
    die: int
    core: int
    siblings: tuple[int, ...]
    l3: tuple[int, ...]


class SeenNode(Frozen):
    node: int
    cpus: tuple[int, ...]
    mem_kb: int
    distances: tuple[int, ...]


class SeenTopology(Frozen):
    online: tuple[int, ...] = ()
    cpus: tuple[SeenCpu, ...] = ()
    nodes: tuple[SeenNode, ...] = ()
    raw: str = Field("", repr=False)

    @property
    def l3_groups(self) -> list[tuple[int, ...]]:
        return sorted({c.l3 for c in self.cpus if c.l3})

    @property
    def summary(self) -> str:
        return (f"{len(self.nodes) or 1} node(s), {len(self.l3_groups)} L3 group(s), "
                f"{len(self.online)} CPUs online")


def parse_topology_report(text: str) -> SeenTopology:
    """Parse the guest's ``report_topology`` lines."""
    online: list[int] = []
    cpus: list[SeenCpu] = []
    nodes: list[SeenNode] = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "online" and len(words) > 1:
            online = parse_cpulist(words[1])
        elif words[0] == "cpu" and len(words) > 2:
            kv = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            cpus.append(SeenCpu(
                cpu=int(words[1]), package=int(kv.get("package", -1)),
                die=int(kv.get("die", 0)), core=int(kv.get("core", -1)),
                siblings=tuple(parse_cpulist(kv.get("siblings", ""))),
                l3=tuple(parse_cpulist(kv.get("l3", "-"))),
            ))
        elif words[0] == "node" and len(words) > 2:
            kv = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            dist = kv.get("distance", "")
            nodes.append(SeenNode(
                node=int(words[1]), cpus=tuple(parse_cpulist(kv.get("cpulist", ""))),
                mem_kb=int(kv.get("memkb", 0) or 0),
                distances=tuple(int(d) for d in dist.split(",") if d),
            ))
    return SeenTopology(online=tuple(online), cpus=tuple(sorted(cpus, key=lambda c: c.cpu)),
                        nodes=tuple(sorted(nodes, key=lambda n: n.node)), raw=text)


def topology_diff(want: Topology, seen: SeenTopology) -> list[str]:
    """Every way the guest's view differs from ``want``; empty when they agree."""
    diffs: list[str] = []
    n = want.total_cpus
    if list(seen.online) != list(range(n)):
        diffs.append(f"online CPUs: want 0-{n - 1}, saw {format_cpulist(list(seen.online))}")
    by_cpu = {c.cpu: c for c in seen.cpus}
    for llc in range(want.llcs):
        llc_cpus = tuple(want.llc_cpus(llc))
        for core in range(want.cores_per_llc):
            sib = tuple(want.cpu_id(llc, core, t) for t in range(want.threads_per_core))
            for cpu in sib:
                c = by_cpu.get(cpu)
                if c is None:
                    diffs.append(f"cpu{cpu}: missing")
                    continue
                if c.siblings != sib:
                    diffs.append(f"cpu{cpu}: thread siblings want {format_cpulist(list(sib))}, "
                                 f"saw {format_cpulist(list(c.siblings))}")
                if c.l3 != llc_cpus:
                    diffs.append(f"cpu{cpu}: L3 shared with want {format_cpulist(list(llc_cpus))}"
                                 f", saw {format_cpulist(list(c.l3))}")
    if want.numa_nodes > 1 or len(seen.nodes) > 1:
        if len(seen.nodes) != want.numa_nodes:
            diffs.append(f"NUMA nodes: want {want.numa_nodes}, saw {len(seen.nodes)}")
        for node in seen.nodes:
            if node.node >= want.numa_nodes:
                continue
            exp = tuple(want.node_cpus(node.node))
            if node.cpus != exp:
                diffs.append(f"node{node.node}: cpus want {format_cpulist(list(exp))}, "
                             f"saw {format_cpulist(list(node.cpus))}")
            exp_dist = tuple(10 if i == node.node else REMOTE_DISTANCE
                             for i in range(want.numa_nodes))
            if node.distances and node.distances != exp_dist:
                diffs.append(f"node{node.node}: distances want {list(exp_dist)}, "
                             f"saw {list(node.distances)}")
            if node.mem_kb <= 0:
                diffs.append(f"node{node.node}: no memory")
    return diffs
