"""Boot one VM with a prepared initrd and collect what the guest says."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology
from ktstr.guest.console import ConsoleEventKind
from ktstr.guest.protocol import Blob, Done, Event, ExecResult, Hello, TopologyReport
from ktstr.guest.topology import SeenTopology, parse_topology_report
from ktstr.results.model import VmOutcome
from ktstr.vm.argv import VmConfig
from ktstr.vm.budget import cpu_budget, cpu_tokens
from ktstr.vm.host import AccelChoice, scaled_timeout
from ktstr.vm.machine import GuestGone, QemuLaunchError, Vm

log = logging.getLogger(__name__)

#: unscaled (KVM) bounds; see ktstr.vm.host for the TCG rule
BOOT_TIMEOUT_S = 15.0
REPORT_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 10.0


class BootOutcome(Frozen):
    vm_outcome: VmOutcome
    detail: str = ""
    hello: Hello | None = None
    seen: SeenTopology | None = None
    done: Done | None = None
    exec_result: ExecResult | None = None
    events: list[Event] = Field(default_factory=list)
    blobs: dict[str, str] = Field(default_factory=dict)
    panic_text: str = ""
    console_tail: str = ""
    console_path: str = ""
    qemu_stderr: str = ""
    argv: list[str] = Field(default_factory=list)
    boot_s: float | None = None
    total_s: float = 0.0
    returncode: int | None = None
    retried: int = 0


_GONE = {
    "crashed": VmOutcome.CRASHED,
    "timeout": VmOutcome.TIMEOUT,
    "emulator_fault": VmOutcome.EMULATOR_FAULT,
    "exited": VmOutcome.EXITED,
}


def boot(
    *,
    kernel: Path,
    initrd: Path,
    cmdline: tuple[str, ...],
    topology: Topology,
    accel: AccelChoice,
    run_dir: Path,
    work_timeout_s: float,
    memory_mb: int | None = None,
    expect_exec: bool = False,
    name: str = "vm",
    boot_retries: int = 1,
) -> BootOutcome:
    """Start QEMU, wait for hello, topology, (exec result), done and exit; all bounded.

    ``work_timeout_s`` is the unscaled budget for the guest's work after boot. The VM
    holds ``min(vCPUs, budget)`` machine-wide CPU tokens while it runs (``ktstr.vm.budget``).
    A guest that never says hello is booted again up to ``boot_retries`` times: QEMU 10
    under TCG rarely hangs at boot with many vCPUs (LAB notes), which is the emulator's
    fault, not the test's.
    """
    t0 = time.monotonic()
    with cpu_tokens(topology.total_cpus, cpu_budget()):
        attempt = 0
        while True:
            vm, out = _boot_once(kernel=kernel, initrd=initrd, cmdline=cmdline,
                                 topology=topology, accel=accel, run_dir=run_dir,
                                 work_timeout_s=work_timeout_s, memory_mb=memory_mb,
                                 expect_exec=expect_exec, name=name)
            silent = out.get("vm_outcome") is VmOutcome.TIMEOUT and "hello" not in out
            if not silent or attempt >= boot_retries:
                break
            attempt += 1
            log.warning("%s: the guest never said hello; booting again (%d of %d) - a rare "
                        "QEMU/TCG boot hang, see docs/running.md", name, attempt, boot_retries)
    out["retried"] = attempt
    return _outcome(vm, out, t0)


def _boot_once(
    *,
    kernel: Path,
    initrd: Path,
    cmdline: tuple[str, ...],
    topology: Topology,
    accel: AccelChoice,
    run_dir: Path,
    work_timeout_s: float,
    memory_mb: int | None,
    expect_exec: bool,
    name: str,
) -> tuple[Vm, dict[str, object]]:
    cfg = VmConfig(
        kernel=str(kernel), initrd=str(initrd), cmdline=cmdline, topology=topology,
        memory_mb=memory_mb, accel=accel.accel, tcg_threading=accel.tcg_threading,
    )

    def scale(seconds: float) -> float:
        return scaled_timeout(seconds, accel.accel, topology)

    t0 = time.monotonic()
    out: dict[str, object] = {}
    vm = Vm(cfg, run_dir, name=name)
    try:
        with vm:
            out["argv"] = vm.argv
            try:
                hello = vm.expect(Hello, scale(BOOT_TIMEOUT_S), what="hello (boot)")
                out["hello"] = hello
                out["boot_s"] = time.monotonic() - t0
                report = vm.expect(TopologyReport, scale(REPORT_TIMEOUT_S), what="topology")
                out["seen"] = parse_topology_report(report.text)
                if expect_exec:
                    out["exec_result"] = vm.expect(ExecResult, scale(work_timeout_s),
                                                   what="command result")
                out["done"] = vm.expect(Done, scale(work_timeout_s), what="end of run")
                vm.wait_exit(scale(EXIT_TIMEOUT_S))
                out["vm_outcome"] = VmOutcome.OK
            except GuestGone as gone:
                out["vm_outcome"] = _GONE.get(gone.kind, VmOutcome.EXITED)
                out["detail"] = gone.detail
                log.warning("%s: %s", name, gone)
    except QemuLaunchError as exc:
        out["vm_outcome"] = VmOutcome.LAUNCH_FAILED
        out["detail"] = f"QEMU failed to start (exit code {exc.returncode}): {exc.error_text}"
        out["argv"] = exc.argv
    return vm, out


def _outcome(vm: Vm, out: dict[str, object], t0: float) -> BootOutcome:
    events = [m for m in vm.messages if isinstance(m, Event)]
    blobs = {m.name: m.text for m in vm.messages if isinstance(m, Blob)}
    panic = "\n".join(vm.console.panic_text)
    if not panic and any(e.kind is ConsoleEventKind.PANIC for e in vm.console_events):
        panic = vm.console.tail_text(40)
    return BootOutcome(
        events=events, blobs=blobs, panic_text=panic,
        console_tail=vm.console.tail_text(60), console_path=str(vm.console_path),
        qemu_stderr=vm.stderr_text[-4000:], total_s=time.monotonic() - t0,
        returncode=vm.returncode, **out,
    )
