"""Running one verifier cell in a VM (the impure half of ``ktstr.sweep.verifier``).

The guest image holds the scheduler binary, its ``.bpf.o``, veristat and bpftool from
the scheduler build of ``cell.build_series`` and the ``ktstr-proginfo`` helper; the
agent gets a ``verify`` plan (the run's setup and attach proof) and answers with the
sections that ``judge_cell`` turns into the verdict.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ktstr.declare.scheduler import Scheduler
from ktstr.declare.spec import DiscoverSpec, PathSpec
from ktstr.declare.topology import Topology, vm_memory_mb
from ktstr.errors import UserError
from ktstr.guest.protocol import RunPlan
from ktstr.kernel.cache import CachedKernel
from ktstr.results.judge import setup_errors
from ktstr.results.model import Verdict
from ktstr.run.image import GuestFiles, GuestImage, guest_image, kernel_files, scheduler_files
from ktstr.run.params import verify_plan
from ktstr.sweep import guestout
from ktstr.sweep.cells import VerifierCell, cell_command
from ktstr.sweep.runner import CellResult, ResultStore
from ktstr.sweep.tools import proginfo_binary
from ktstr.sweep.verifier import VerifierDetail, guest_reproducer, judge_cell, judge_vm
from ktstr.vm.host import AccelChoice, AccelRequest
from ktstr.vm.snapshot import snapshots_enabled

log = logging.getLogger(__name__)

OBJ_DIR = "/verify"
#: guest memory floor: the 7.x kernels parse vmlinux BTF at boot and OOM in 256 MiB
MIN_MEMORY_MB = 1024
ATTACH_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5
#: unscaled budget for the guest script (veristat + attach + stop + verbose log)
WORK_TIMEOUT_S = 150.0
LOG_CAP_BYTES = 4 * 1024 * 1024
#: host CPUs a restored cell keeps busy: its guest runs one program at a time (veristat,
#: then the scheduler's load and attach), and an idle vCPU costs TCG no host time
VERIFY_HOST_CPUS = 1


class CellFiles:
    """Host paths a cell needs: the scheduler binary, its BPF object and the tools."""

    def __init__(self, binary: Path, bpf_object: Path | None, veristat: Path, bpftool: Path,
                 proginfo: Path) -> None:
        self.binary = binary
        self.bpf_object = bpf_object
        self.veristat = veristat
        self.bpftool = bpftool
        self.proginfo = proginfo


def cell_files(cell: VerifierCell, sched: Scheduler) -> CellFiles:
    """From the scheduler build of ``cell.build_series`` (a ``path`` binary brings its
    own ``NAME.bpf.o`` next to it, or none: then only the live load is judged)."""
    from ktstr.schedbin import SchedulerCache

    build = SchedulerCache().for_series(cell.build_series)
    if build is None:
        raise UserError(f"no scheduler build for series {cell.build_series}; run:\n"
                        f"    ktstr schedulers build --series {cell.build_series}")
    if build.stale:
        _say_stale(build.series, build.recipe)
    spec = sched.binary
    if isinstance(spec, PathSpec):
        binary = Path(spec.binary_path)
        if not binary.is_file():
            raise UserError(f"scheduler {sched.name!r}: binary {binary} does not exist")
        sibling = binary.with_name(f"{binary.name}.bpf.o")
        obj: Path | None = sibling if sibling.is_file() else None
    else:
        assert isinstance(spec, DiscoverSpec), spec  # expand_verifier_cells: has_binary
        binary = build.binary(spec.name)
        if not binary.is_file():
            raise UserError(f"the {cell.build_series} scheduler build has no {spec.name} "
                            f"(built: {', '.join(build.schedulers)})")
        obj = build.bpf_object(spec.name)
        obj = obj if obj.is_file() else None
    return CellFiles(binary, obj, build.veristat, build.bpftool, proginfo_binary())


@functools.cache
def _say_stale(series: str, recipe: int) -> None:
    from ktstr.schedbin.cache import BUILD_RECIPE

    log.warning("the %s scheduler build is of an older recipe (%d < %d): its bpftool links "
                "libLLVM, so each cell sends ~200 MB more into its guest; rebuild with "
                "`ktstr schedulers build --series %s`", series, recipe, BUILD_RECIPE, series)


def cell_guest_files(files: CellFiles, sched: Scheduler, kernel: CachedKernel) -> GuestFiles:
    """The image of a cell: the scheduler's files and the kernel config exactly as a run
    has them (``ktstr.run.image``), plus veristat, bpftool, the proginfo helper and the
    scheduler's BPF object."""
    out = GuestFiles()
    out.update(kernel_files(kernel))
    out.update(scheduler_files(sched, files.binary))
    out.binaries.update({"/usr/bin/veristat": files.veristat, "/usr/bin/bpftool": files.bpftool,
                         "/usr/bin/ktstr-proginfo": files.proginfo})
    if files.bpf_object:
        out.files[f"{OBJ_DIR}/{files.bpf_object.name}"] = files.bpf_object
    return out


def cell_plan(files: CellFiles, sched: Scheduler, accel: AccelChoice, topology: Topology,
              expected: Sequence[str]) -> RunPlan:
    """The agent's plan for a cell (mode ``verify``), bounds scaled for ``accel``."""
    return verify_plan(
        scheduler=sched, attach_timeout_s=accel.bound(ATTACH_TIMEOUT_S, topology),
        stop_timeout_s=accel.bound(STOP_TIMEOUT_S, topology),
        bpf_object=f"{OBJ_DIR}/{files.bpf_object.name}" if files.bpf_object else "",
        log_cap=LOG_CAP_BYTES, expected=expected)


class VerifierExecutor:
    """``execute`` for ``run_cells``: one verifier cell in a VM."""

    def __init__(self, schedulers: Mapping[str, Scheduler], store: ResultStore, *,
                 accel: AccelRequest = AccelRequest.AUTO,
                 declaration_modules: tuple[str, ...] = ()) -> None:
        self.schedulers = dict(schedulers)
        self.store = store
        self.accel_request = accel
        self.declaration_modules = declaration_modules

    def _accel(self, kernel: CachedKernel) -> AccelChoice:
        from ktstr.run.probe import kvm_boot_probe
        from ktstr.vm.host import choose_accel, find_qemu

        return choose_accel(self.accel_request, find_qemu(),
                            boot_probe=lambda: kvm_boot_probe(kernel))

    def __call__(self, cell: VerifierCell) -> CellResult:
        from ktstr.kernel.fetch import Fetcher
        from ktstr.run.boot import boot_retrying
        from ktstr.run.rundir import finish_run_dir, make_run_dir
        from ktstr.vm.argv import kernel_cmdline

        t0 = time.monotonic()
        sched = self.schedulers[cell.scheduler]
        kernel = Fetcher().cached_key(cell.kernel.key)
        files = cell_files(cell, sched)
        base = VerifierDetail(
            scheduler=cell.scheduler, kernel=cell.kernel.version,
            kernel_release=kernel.release or "", preset=cell.preset,
            topology=cell.topology.label, build_series=cell.build_series,
            bpf_object=str(files.bpf_object or ""),
            reproducer=" ".join(cell_command(cell, self.declaration_modules)),
            guest_reproducer=guest_reproducer(cell, str(files.bpf_object), str(files.veristat))
            if files.bpf_object else "",
        )
        accel = self._accel(kernel)
        run_dir = make_run_dir("ktstr-v-")
        gfiles = cell_guest_files(files, sched, kernel)
        image = guest_image(gfiles, kernel)
        memory = vm_memory_mb(cell.topology, MIN_MEMORY_MB)

        def initrd_for(choice: AccelChoice) -> tuple[GuestImage, RunPlan]:
            return image, cell_plan(files, sched, choice, cell.topology, gfiles.expected)

        outcome = boot_retrying(
            make_initrd=initrd_for, kernel=kernel.image_path,
            cmdline=kernel_cmdline(user_kargs=sched.kargs), topology=cell.topology,
            accel=accel, run_dir=run_dir, work_timeout_s=WORK_TIMEOUT_S, memory_mb=memory,
            expect_verify=True, name=cell.id, snapshots=snapshots_enabled(),
            host_cpus=VERIFY_HOST_CPUS)
        base = base.model_copy(update={"vm_outcome": outcome.vm_outcome,
                                       "vm_detail": outcome.detail, "boot_s": outcome.boot_s})
        sections = (dict(outcome.verify_result.sections)
                    if outcome.verify_result is not None else {})
        if outcome.verify_result is None:
            verdict, why = judge_vm(outcome.vm_outcome, outcome.detail)
            detail, reasons = base, [why]
        else:
            verdict, reasons, detail = judge_cell(
                cell, sections, has_object=files.bpf_object is not None, base=base)
        setup = setup_errors(outcome.events)
        if setup:  # a broken setup (sysctl, cgroup parent, include file, karg): not the BPF
            verdict, reasons = Verdict.ERROR, setup
        if outcome.emulator_fault and verdict is not Verdict.PASS:
            reasons = ["retried after an emulator fault (Oops: int3 under multi-threaded "
                       "TCG) with thread=single", *reasons]
        if verdict is not Verdict.PASS:
            logs = self.store.log_dir(cell.id)
            (logs / "guest-output.txt").write_text(guestout.join_sections(sections))
            (logs / "console.txt").write_text(outcome.console_tail or outcome.panic_text)
            head, progs = guestout.split_verbose_log(sections.get("verifier_log", ""))
            parts = [head] + [f"=== {n}\n{t}" for n, t in progs.items()]
            (logs / "verifier.log").write_text(guestout.collapse_repeats("\n".join(parts)))
            detail = detail.model_copy(update={"log_dir": str(logs)})
        finish_run_dir(run_dir, keep=False)
        return CellResult(id=cell.id, kind="verifier", outcome=verdict, reasons=reasons,
                          detail=detail.model_dump(mode="json"),
                          duration_s=time.monotonic() - t0)
