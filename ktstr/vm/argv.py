"""Pure QEMU command-line building. Everything here is a function of its inputs.

Topology recipe (QEMU 10 under TCG or KVM): one socket per LLC, so that each LLC is its
own L3 group; N nodes x L LLCs x C cores x T threads becomes
``-smp N*L*C*T,sockets=L,cores=C,threads=T`` (``L`` counts LLCs in total) and one
``-numa node`` per node covering the node's contiguous, socket-major CPU range. QEMU 10
aborts on ``dies>1`` with an Intel CPU model, so dies are not used.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology, vm_memory_mb


class Accel(enum.StrEnum):
    KVM = "kvm"
    TCG = "tcg"


class TcgThreading(enum.StrEnum):
    MULTI = "multi"
    SINGLE = "single"


#: distance between different NUMA nodes (local is 10)
REMOTE_DISTANCE = 20


class VmConfig(Frozen):
    """What one QEMU process should look like."""

    qemu: str = "qemu-system-x86_64"
    kernel: str
    initrd: str
    cmdline: tuple[str, ...] = ()
    topology: Topology
    memory_mb: int | None = Field(None, ge=64)
    accel: Accel = Accel.TCG
    tcg_threading: TcgThreading = TcgThreading.MULTI
    qmp_fd: int | None = None
    results_socket: str | None = None
    interactive: bool = False
    #: start waiting for a snapshot to load (``-incoming defer``; ``ktstr.vm.snapshot``)
    incoming: bool = False
    extra_args: tuple[str, ...] = ()

    @property
    def total_memory_mb(self) -> int:
        return vm_memory_mb(self.topology, self.memory_mb)


def smp_args(t: Topology) -> list[str]:
    return [
        "-smp",
        f"{t.total_cpus},sockets={t.llcs},cores={t.cores_per_llc},threads={t.threads_per_core}",
    ]


def cpu_range(cpus: Sequence[int]) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else f"{cpus[0]}"


def numa_args(t: Topology, memory_mb: int) -> list[str]:
    """Memory (``-m``) plus, for more than one node, per-node backends and distances."""
    args = ["-m", f"{memory_mb}M"]
    if t.numa_nodes == 1:
        return args
    per_node = memory_mb // t.numa_nodes
    for node in range(t.numa_nodes):
        args += [
            "-object", f"memory-backend-ram,id=mem{node},size={per_node}M",
            "-numa", f"node,memdev=mem{node},nodeid={node},cpus={cpu_range(t.node_cpus(node))}",
        ]
    for src in range(t.numa_nodes):
        for dst in range(t.numa_nodes):
            if src < dst:
                args += ["-numa", f"dist,src={src},dst={dst},val={REMOTE_DISTANCE}"]
    return args


#: the TCG guest CPU (KVM passes the host's through)
TCG_CPU = "max,vendor=GenuineIntel,-erms,-fsrm"


def accel_args(accel: Accel, threading: TcgThreading) -> list[str]:
    if accel is Accel.KVM:
        return ["-accel", "kvm", "-cpu", "host"]
    # the default TCG "max" CPU is AMD-flavoured (no L3 per socket as we need it). TCG
    # runs ``rep movsb`` slowly, and with ERMS/FSRM the kernel copies (copy_to_user,
    # clear_page, ...) use it: without them reading /sys/kernel/btf/vmlinux (5.4 MB,
    # which libbpf does on every scheduler start) took 0.05 s instead of 0.18-0.27 s
    return ["-accel", f"tcg,thread={threading.value}", "-cpu", TCG_CPU]


def qemu_argv(cfg: VmConfig) -> list[str]:
    """The full argv for one VM."""
    argv = [
        cfg.qemu,
        "-machine", "q35",
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",
        *accel_args(cfg.accel, cfg.tcg_threading),
        *smp_args(cfg.topology),
        *numa_args(cfg.topology, cfg.total_memory_mb),
        "-kernel", cfg.kernel,
        "-initrd", cfg.initrd,
        "-append", " ".join(cfg.cmdline),
    ]
    # the console: QEMU's stdout (a pipe we read, or the user's terminal)
    if cfg.interactive:
        argv += ["-chardev", "stdio,id=con,signal=off,mux=off"]
    else:
        argv += ["-chardev", "stdio,id=con,signal=off"]
    argv += ["-serial", "chardev:con"]
    if cfg.qmp_fd is not None:
        argv += ["-chardev", f"socket,id=qmp,fd={cfg.qmp_fd}", "-mon", "chardev=qmp,mode=control"]
    if cfg.results_socket is not None:
        argv += [
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=results,path={cfg.results_socket},server=on,wait=on",
            "-device", "virtserialport,bus=vser0.0,chardev=results,name=ktstr.results",
        ]
    # a new generation id on every QEMU start: a guest restored from a snapshot sees it
    # change and reseeds its RNG (CONFIG_VMGENID)
    argv += ["-device", "vmgenid,guid=auto"]
    argv += list(cfg.extra_args)
    if cfg.incoming:
        argv += ["-incoming", "defer"]
    return argv


def kernel_cmdline(
    *,
    user_kargs: Sequence[str] = (),
    quiet: bool = True,
    extra: Sequence[str] = (),
) -> tuple[str, ...]:
    """ktstr's own kernel arguments first (console, init, panic), then the scheduler's
    kargs (already validated not to override ours), then run parameters."""
    base = [
        "console=ttyS0,115200",
        "rdinit=/init",
        "panic=-1",
        "loglevel=4" if quiet else "loglevel=7",
    ]
    if quiet:
        base.append("quiet")
    return (*base, *user_kargs, *extra)
