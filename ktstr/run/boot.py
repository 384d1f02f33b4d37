"""Boot one VM with a prepared initrd and collect what the guest says."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology
from ktstr.errors import KtstrError
from ktstr.guest.console import ConsoleEventKind
from ktstr.guest.protocol import (
    BadMessage,
    Blob,
    Done,
    Event,
    ExecResult,
    FilesHeader,
    Hello,
    RunPlan,
    TopologyReport,
    VerifyResult,
)
from ktstr.guest.topology import SeenTopology, parse_topology_report, topology_diff
from ktstr.image.cache import HashStore
from ktstr.results.model import VmOutcome
from ktstr.run.image import GuestImage
from ktstr.vm import snapshot
from ktstr.vm.argv import TcgThreading, VmConfig
from ktstr.vm.budget import cpu_budget, cpu_tokens
from ktstr.vm.host import AccelChoice
from ktstr.vm.machine import GuestGone, QemuLaunchError, Vm

log = logging.getLogger(__name__)

#: unscaled (KVM) bounds; see ktstr.vm.host for the TCG rule
BOOT_TIMEOUT_S = 15.0
REPORT_TIMEOUT_S = 10.0
#: the guest reading the run's files and plan (tens of MB at most)
SEND_TIMEOUT_S = 20.0


class BootOutcome(Frozen):
    vm_outcome: VmOutcome
    detail: str = ""
    hello: Hello | None = None
    seen: SeenTopology | None = None
    done: Done | None = None
    exec_result: ExecResult | None = None
    verify_result: VerifyResult | None = None
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
    #: lines from the guest channel that were not valid messages (should be none)
    bad_messages: list[str] = Field(default_factory=list)
    #: the accelerator of the attempt this outcome is from
    accel: AccelChoice | None = None
    #: the console line of the emulator fault that made this a retry ("" if none)
    emulator_fault: str = ""
    #: how the VM started: "restored (snapshot KEY, ...)" or "cold (why)"
    boot: str = ""


@dataclasses.dataclass
class _Said:
    """What one attempt learned, filled in as the guest answers (``BootOutcome`` is made
    from it once the VM is gone)."""

    boot: str = ""
    argv: list[str] = dataclasses.field(default_factory=list)
    boot_s: float | None = None
    hello: Hello | None = None
    seen: SeenTopology | None = None
    exec_result: ExecResult | None = None
    verify_result: VerifyResult | None = None
    done: Done | None = None
    #: None until the run ends; how it ended
    vm_outcome: VmOutcome | None = None
    detail: str = ""
    retried: int = 0

    def gone(self, gone: GuestGone) -> None:
        self.vm_outcome, self.detail = gone.kind, gone.detail


class BootSpec(Frozen):
    """What every attempt of one boot shares (the retry changes only the accelerator)."""

    kernel: Path
    cmdline: tuple[str, ...]
    topology: Topology
    run_dir: Path
    work_timeout_s: float
    memory_mb: int | None = None
    expect_exec: bool = False
    expect_verify: bool = False
    name: str = "vm"
    #: restore from (or save to) the snapshot cache (``ktstr.vm.snapshot``)
    snapshots: bool = False


def boot(
    *,
    kernel: Path,
    image: GuestImage | Path,
    plan: RunPlan,
    cmdline: tuple[str, ...],
    topology: Topology,
    accel: AccelChoice,
    run_dir: Path,
    work_timeout_s: float,
    memory_mb: int | None = None,
    expect_exec: bool = False,
    expect_verify: bool = False,
    name: str = "vm",
    boot_retries: int = 1,
    snapshots: bool = False,
    progress: Callable[[str], None] | None = None,
    host_cpus: int | None = None,
    budget: int | None = None,
) -> BootOutcome:
    """Start QEMU -- restored from a snapshot of the same key when ``snapshots`` and one
    exists, else booted (saving a snapshot at hello when ``snapshots``) -- send the guest
    its per-run files and ``plan``, wait for the topology, the result (exec or verify
    modes), done and exit; all bounded.

    ``work_timeout_s`` is the unscaled budget for the guest's work after boot. The VM
    holds ``min(vCPUs, budget)`` machine-wide CPU tokens while it runs (``ktstr.vm.budget``;
    ``budget`` None: ``$KTSTR_CPU_BUDGET``, else the host's CPUs); a restored VM whose work
    keeps fewer CPUs busy (``host_cpus``: a verifier cell runs one program at a time, and
    idle vCPUs cost TCG nothing) holds that many. A cold boot always holds its vCPUs'
    worth: every vCPU works while the kernel boots.
    A guest that never says hello is booted again up to ``boot_retries`` times: QEMU 10
    under TCG rarely hangs at boot with many vCPUs (LAB notes), which is the emulator's
    fault, not the test's. A snapshot that fails to load, or a restored guest that does
    not answer or shows another topology, is discarded and the VM is booted cold.
    """
    spec = BootSpec(kernel=kernel, cmdline=cmdline, topology=topology, run_dir=run_dir,
                    work_timeout_s=work_timeout_s, memory_mb=memory_mb,
                    expect_exec=expect_exec, expect_verify=expect_verify, name=name,
                    snapshots=snapshots)
    img = image if isinstance(image, GuestImage) else GuestImage(base=image)
    t0 = time.monotonic()
    # the snapshot key hashes the kernel and base image: once per boot, for both paths
    key, why_not = _key(_vm_config(spec, accel, img.base)) if snapshots else (None, "")
    say = progress if progress is not None else log.info
    limit = budget if budget is not None else cpu_budget()
    vm: Vm | None = None
    said = _Said()
    if key is not None:
        busy = topology.total_cpus if host_cpus is None else host_cpus
        with cpu_tokens(max(1, min(busy, topology.total_cpus)), limit, say=say):
            vm, said = _restored(spec, img, plan, accel, key)
    if vm is None:
        with cpu_tokens(topology.total_cpus, limit, say=say):
            attempt = 0
            while True:
                vm, cold = _boot_once(spec, img, plan, accel, key, why_not)
                silent = cold.vm_outcome is VmOutcome.TIMEOUT and cold.hello is None
                if not silent or attempt >= boot_retries:
                    break
                attempt += 1
                log.warning("%s: the guest never said hello; booting again (%d of %d) - a "
                            "rare QEMU/TCG boot hang, see docs/running.md", name, attempt,
                            boot_retries)
            cold.retried = attempt
            if said.boot:  # a snapshot that failed to load: said once, with the cold boot's
                cold.boot = f"{cold.boot or 'cold'}; {said.boot}"
            said = cold
    return _outcome(vm, said, accel, t0)


def boot_retrying(
    *,
    make_initrd: Callable[[AccelChoice], tuple[GuestImage | Path, RunPlan]],
    kernel: Path,
    cmdline: tuple[str, ...],
    topology: Topology,
    accel: AccelChoice,
    run_dir: Path,
    work_timeout_s: float,
    memory_mb: int | None = None,
    expect_exec: bool = False,
    expect_verify: bool = False,
    name: str = "vm",
    progress: Callable[[str], None] | None = None,
    snapshots: bool = False,
    host_cpus: int | None = None,
    budget: int | None = None,
) -> BootOutcome:
    """The one boot policy of every path (run, shell --exec, sweep cells):

    boot with ``accel``; when multi-threaded TCG hits an emulator fault (``Oops: int3``
    at a static-key site, LAB notes, or QEMU crashing on its own), boot once more with
    ``thread=single``. The retry's image and plan are made again by ``make_initrd``
    because the guest's own bounds depend on the accelerator (``AccelChoice.bound``); the
    outcome says which fault caused it.
    """
    kw = {"kernel": kernel, "cmdline": cmdline, "topology": topology, "run_dir": run_dir,
          "work_timeout_s": work_timeout_s, "memory_mb": memory_mb,
          "expect_exec": expect_exec, "expect_verify": expect_verify, "name": name,
          "snapshots": snapshots, "progress": progress, "host_cpus": host_cpus,
          "budget": budget}
    image, plan = make_initrd(accel)
    outcome = boot(image=image, plan=plan, accel=accel, **kw)  # type: ignore[arg-type]
    if outcome.vm_outcome is not VmOutcome.EMULATOR_FAULT or \
            accel.tcg_threading is not TcgThreading.MULTI:
        return outcome
    fault = outcome.detail
    note = ("emulator fault under multi-threaded TCG (" + fault.strip()[-120:] + "): "
            "retrying with thread=single, guest bounds scaled for it")
    log.warning("%s: %s", name, note)
    if progress is not None:
        progress(note)
    single = accel.model_copy(update={
        "tcg_threading": TcgThreading.SINGLE,
        "reason": accel.reason + "; retried single-threaded after an emulator fault"})
    image, plan = make_initrd(single)
    retry = boot(image=image, plan=plan, accel=single, **kw)  # type: ignore[arg-type]
    return retry.model_copy(update={"emulator_fault": fault or "Oops: int3"})


def _vm_config(spec: BootSpec, accel: AccelChoice, initrd: Path,
               incoming: bool = False) -> VmConfig:
    return VmConfig(kernel=str(spec.kernel), initrd=str(initrd), cmdline=spec.cmdline,
                    topology=spec.topology, memory_mb=spec.memory_mb, accel=accel.accel,
                    tcg_threading=accel.tcg_threading, incoming=incoming)


def _key(cfg: VmConfig) -> tuple[snapshot.SnapshotKey | None, str]:
    """The snapshot key of ``cfg``, or None and why not."""
    from ktstr.vm.host import qemu_version

    try:
        version = ".".join(map(str, qemu_version(cfg.qemu)))
        hashes = HashStore(snapshot.snapshots_dir())
        key = snapshot.snapshot_key(cfg, version, hashes)
        hashes.save()
    except (KtstrError, OSError) as exc:
        return None, f"no snapshot key: {exc}"
    return key, ""


def _restored(spec: BootSpec, image: GuestImage, plan: RunPlan, accel: AccelChoice,
              key: snapshot.SnapshotKey) -> tuple[Vm | None, _Said]:
    """Run from the snapshot of ``key`` if there is a good one: the VM and what it said,
    or None and (in ``boot``) why it was not used, when it must boot cold."""
    store = snapshot.SnapshotStore()
    state = store.lookup(key)
    if state is None:
        return None, _Said()
    t0 = time.monotonic()
    said = _Said()
    vm = Vm(_vm_config(spec, accel, image.base, incoming=True), spec.run_dir, name=spec.name)
    try:
        with vm:
            said.argv = vm.argv
            load_s = snapshot.restore(vm, state)
            said.boot_s = time.monotonic() - t0
            said.boot = f"restored (snapshot {key.short}, loaded in {load_s:.2f} s)"
            _drive(vm, spec, image, plan, accel, said, restored=True)
    except (snapshot.SnapshotError, _RestoreFailed) as exc:
        store.discard(key, str(exc))
        return None, _Said(boot=f"snapshot {key.short} discarded: {exc}")
    except QemuLaunchError as exc:
        return None, _Said(boot=f"snapshot {key.short} not used: QEMU failed to start "
                           f"(exit code {exc.returncode}): {exc.error_text}")
    return vm, said


class _RestoreFailed(Exception):
    """A restored guest did not answer, or not with the topology it should have."""


def _boot_once(spec: BootSpec, image: GuestImage, plan: RunPlan, accel: AccelChoice,
               key: snapshot.SnapshotKey | None, why_no_key: str,
               ) -> tuple[Vm, _Said]:
    """A cold boot; with snapshots on, the base image alone is booted and saved at hello
    as ``key`` (the run's files follow through the agent), so that the next VM of this key
    restores."""
    said = _Said()
    if spec.snapshots:
        cfg = _vm_config(spec, accel, image.base)
        said.boot = "cold (" + (why_no_key or "no snapshot of this VM yet") + ")"
    else:
        cfg = _vm_config(spec, accel, image.initrd(spec.run_dir))
        said.boot = "cold (snapshots off)"
    t0 = time.monotonic()
    vm = Vm(cfg, spec.run_dir, name=spec.name)
    try:
        with vm:
            said.argv = vm.argv
            try:
                said.hello = vm.expect(Hello, accel.bound(BOOT_TIMEOUT_S, spec.topology),
                                       what="hello (boot)")
                said.boot_s = boot_s = time.monotonic() - t0
                if key is not None:
                    said.boot = _save(vm, key, spec, accel, boot_s)
                _drive(vm, spec, image if spec.snapshots else GuestImage(base=image.base),
                       plan, accel, said, restored=False)
            except GuestGone as gone:
                said.gone(gone)
                log.warning("%s: %s", spec.name, gone)
    except QemuLaunchError as exc:
        said.vm_outcome = VmOutcome.LAUNCH_FAILED
        said.detail = f"QEMU failed to start (exit code {exc.returncode}): {exc.error_text}"
        said.argv = exc.argv
    return vm, said


def _save(vm: Vm, key: snapshot.SnapshotKey, spec: BootSpec, accel: AccelChoice,
          boot_s: float) -> str:
    """Save the just-booted VM as ``key``'s snapshot (unless another process is making
    it); what the result says about this boot."""
    store = snapshot.SnapshotStore()
    with store.making(key) as tmp:
        if tmp is None:
            return "cold (another process is making this VM's snapshot)"
        try:
            save_s = snapshot.save(vm, tmp)
        except snapshot.SnapshotError as exc:
            log.warning("%s: snapshot not saved: %s", spec.name, exc)
            return f"cold (snapshot not saved: {exc})"
        label = (f"{spec.kernel.parent.name} {spec.topology.label} {accel.accel.value}"
                 f"/{accel.tcg_threading.value} {' '.join(spec.cmdline)}")
        meta = store.commit(key, tmp, save_s=save_s, boot_s=boot_s, label=label)
    return (f"cold (no snapshot of this VM yet; saved {key.short} in {save_s:.2f} s, "
            f"{meta.disk_bytes >> 20} MB)")


def _drive(vm: Vm, spec: BootSpec, image: GuestImage, plan: RunPlan, accel: AccelChoice,
           said: _Said, *, restored: bool) -> None:
    """After hello (or a restore): the run's files, the plan, then every answer."""

    def scale(seconds: float) -> float:
        return accel.bound(seconds, spec.topology)

    bound = scale(SEND_TIMEOUT_S)
    for part in image.archives():
        if isinstance(part, bytes):
            vm.send(FilesHeader(size=len(part)).line(), bound)
            vm.send(part, bound)
        else:
            vm.send(FilesHeader(size=part.stat().st_size).line(), bound)
            vm.send_file(part, bound)
    plan = plan.model_copy(update={
        "clock_unix_ns": time.time_ns(), "entropy_hex": secrets.token_hex(32),
        "report_topology": plan.report_topology or restored})
    vm.send(plan.line(), bound)
    if plan.report_topology:
        try:
            report = vm.expect(TopologyReport, scale(REPORT_TIMEOUT_S), what="topology")
        except GuestGone as gone:
            if restored:
                raise _RestoreFailed(f"the restored guest did not answer: {gone}") from gone
            raise
        seen = parse_topology_report(report.text)
        said.seen = seen
        if restored and (diff := topology_diff(spec.topology, seen)):
            raise _RestoreFailed("the restored guest shows another topology: "
                                 + "; ".join(diff))
    try:
        if spec.expect_exec:
            said.exec_result = vm.expect(ExecResult, scale(spec.work_timeout_s),
                                           what="command result")
        if spec.expect_verify:
            said.verify_result = vm.expect(VerifyResult, scale(spec.work_timeout_s),
                                             what="verifier cell result")
        said.done = vm.expect(Done, scale(spec.work_timeout_s), what="end of run")
        # the guest has said everything; its power-off (~0.1 s under TCG) is not waited
        # for: QEMU is told to quit
        vm.shutdown()
        said.vm_outcome = VmOutcome.OK
    except GuestGone as gone:
        said.gone(gone)
        log.warning("%s: %s", spec.name, gone)


def _outcome(vm: Vm, said: _Said, accel: AccelChoice, t0: float) -> BootOutcome:
    events = [m for m in vm.messages if isinstance(m, Event)]
    blobs = {m.name: m.text for m in vm.messages if isinstance(m, Blob)}
    bad = [f"{m.error}: {m.line}" for m in vm.messages if isinstance(m, BadMessage)]
    for line in bad:
        log.warning("bad message from the guest: %s", line)
    panic = "\n".join(vm.console.panic_text)
    if not panic and any(e.kind is ConsoleEventKind.PANIC for e in vm.console_events):
        panic = vm.console.tail_text(40)
    return BootOutcome(
        events=events, blobs=blobs, panic_text=panic,
        console_tail=vm.console.tail_text(60), console_path=str(vm.console_path),
        qemu_stderr=vm.stderr_text[-4000:], total_s=time.monotonic() - t0,
        returncode=vm.returncode, bad_messages=bad, accel=accel, boot=said.boot,
        argv=said.argv, boot_s=said.boot_s, hello=said.hello, seen=said.seen,
        exec_result=said.exec_result, verify_result=said.verify_result, done=said.done,
        vm_outcome=said.vm_outcome or VmOutcome.EXITED, detail=said.detail,
        retried=said.retried,
    )
