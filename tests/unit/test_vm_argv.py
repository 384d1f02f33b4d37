"""The pure QEMU argv builder: goldens per preset, and the topology arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr.declare.presets import PRESETS, preset
from ktstr.declare.topology import Topology
from ktstr.testing.golden import assert_golden
from ktstr.vm.argv import (
    Accel,
    TcgThreading,
    VmConfig,
    kernel_cmdline,
    numa_args,
    qemu_argv,
    smp_args,
)

GOLDEN = Path(__file__).parent / "golden" / "vm"


def _cfg(t: Topology, **kw: object) -> VmConfig:
    return VmConfig(kernel="/k/vmlinuz", initrd="/r/initrd.img", topology=t,
                    cmdline=kernel_cmdline(), qmp_fd=7, results_socket="/r/r.sock", **kw)


@pytest.mark.parametrize("name", [p.name for p in PRESETS])
def test_argv_golden_per_preset(name: str) -> None:
    argv = qemu_argv(_cfg(preset(name).topology))
    assert_golden("\n".join(argv) + "\n", GOLDEN / f"{name}.argv")


def test_one_socket_per_llc_with_cores_and_threads() -> None:
    assert smp_args(Topology(2, 4, 2, 1)) == ["-smp", "8,sockets=4,cores=2,threads=1"]
    assert smp_args(Topology(1, 2, 2, 2)) == ["-smp", "8,sockets=2,cores=2,threads=2"]


def test_single_node_has_no_numa_objects() -> None:
    assert numa_args(Topology(1, 2, 2, 1), 512) == ["-m", "512M"]


def test_numa_nodes_split_memory_and_cpus_contiguously_with_distances() -> None:
    args = numa_args(Topology(2, 4, 2, 1), 512)
    joined = " ".join(args)
    assert "memory-backend-ram,id=mem0,size=256M" in joined
    assert "node,memdev=mem0,nodeid=0,cpus=0-3" in joined
    assert "node,memdev=mem1,nodeid=1,cpus=4-7" in joined
    assert "dist,src=0,dst=1,val=20" in joined


def test_tcg_uses_intel_vendor_and_threading_kvm_uses_host() -> None:
    t = Topology(1, 1, 2, 1)
    tcg = qemu_argv(_cfg(t, tcg_threading=TcgThreading.SINGLE))
    assert "tcg,thread=single" in tcg
    cpu = tcg[tcg.index("-cpu") + 1].split(",")
    assert cpu[0] == "max" and "vendor=GenuineIntel" in cpu
    assert {"-erms", "-fsrm"} <= set(cpu)  # the kernel's copies avoid TCG's slow rep movsb
    kvm = qemu_argv(_cfg(t, accel=Accel.KVM))
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"


def test_memory_rule_applies_when_not_requested() -> None:
    argv = qemu_argv(_cfg(Topology(1, 2, 4, 2)))  # 16 CPUs x 64 MiB = the 1 GiB floor
    assert argv[argv.index("-m") + 1] == "1024M"
    argv = qemu_argv(_cfg(Topology(1, 4, 4, 2)))  # 32 CPUs x 64 MiB
    assert argv[argv.index("-m") + 1] == "2048M"
    argv = qemu_argv(_cfg(Topology(1, 1, 1, 1), memory_mb=3000))
    assert argv[argv.index("-m") + 1] == "3000M"


def test_results_port_waits_for_the_harness_and_qmp_uses_the_fd() -> None:
    argv = qemu_argv(_cfg(Topology(1, 1, 2, 1)))
    joined = " ".join(argv)
    assert "socket,id=results,path=/r/r.sock,server=on,wait=on" in joined
    assert "socket,id=qmp,fd=7" in joined
    assert "virtserialport,bus=vser0.0,chardev=results,name=ktstr.results" in joined
    assert "-no-reboot" in argv


def test_kernel_cmdline_puts_ours_first_and_keeps_user_kargs() -> None:
    line = kernel_cmdline(user_kargs=("nosmt",), extra=("x=1",))
    assert line[:3] == ("console=ttyS0,115200", "rdinit=/init", "panic=-1")
    assert line[-2:] == ("nosmt", "x=1")
