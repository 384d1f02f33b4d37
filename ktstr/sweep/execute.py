"""Running one verifier cell in a VM (the impure half of ``ktstr.sweep.verifier``).

The guest image holds the scheduler binary, its ``.bpf.o``, veristat and bpftool from
the scheduler build of ``cell.build_series`` and the ``ktstr-proginfo`` helper; the run
segment holds ``verify_guest.sh`` (init mode ``exec``), the scheduler's arguments and
sysctls. The guest prints sections that ``judge_cell`` turns into the verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import vm_memory_mb
from ktstr.errors import UserError
from ktstr.image import builder
from ktstr.kernel.cache import CachedKernel
from ktstr.results.model import VmOutcome
from ktstr.run.params import args_file, params_sh, sched_guest_path, sysctls_file
from ktstr.sweep import guestout
from ktstr.sweep.cells import VerifierCell, cell_command
from ktstr.sweep.runner import CellResult, Outcome, ResultStore
from ktstr.sweep.tools import packaged_text, proginfo_binary
from ktstr.sweep.verifier import VerifierDetail, guest_reproducer, judge_cell, judge_vm
from ktstr.vm.host import AccelChoice, AccelRequest

log = logging.getLogger(__name__)

OBJ_DIR = "/verify"
#: guest memory floor: the 7.x kernels parse vmlinux BTF at boot and OOM in 256 MiB
MIN_MEMORY_MB = 1024
ATTACH_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5
#: unscaled budget for the guest script (veristat + attach + stop + verbose log)
WORK_TIMEOUT_S = 150.0
LOG_CAP_BYTES = 4 * 1024 * 1024


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
    spec = sched.binary
    if spec.path_ is not None:
        binary = Path(spec.path_)
        if not binary.is_file():
            raise UserError(f"scheduler {sched.name!r}: binary {binary} does not exist")
        sibling = binary.with_name(f"{binary.name}.bpf.o")
        obj: Path | None = sibling if sibling.is_file() else None
    else:
        assert spec.name is not None
        binary = build.binary(spec.name)
        if not binary.is_file():
            raise UserError(f"the {cell.build_series} scheduler build has no {spec.name} "
                            f"(built: {', '.join(build.schedulers)})")
        obj = build.bpf_object(spec.name)
        obj = obj if obj.is_file() else None
    return CellFiles(binary, obj, build.veristat, build.bpftool, proginfo_binary())


def guest_script(files: CellFiles, sched: Scheduler) -> str:
    """``/ktstr/cmd.sh``: the parameters, then ``verify_guest.sh``."""
    params = params_sh({
        "V_OBJ": f"{OBJ_DIR}/{files.bpf_object.name}" if files.bpf_object else "",
        "V_BIN": sched_guest_path(sched) or "",
        "V_ATTACH_S": ATTACH_TIMEOUT_S, "V_STOP_S": STOP_TIMEOUT_S,
        "V_LOG_CAP": LOG_CAP_BYTES,
        "V_CGROUP": sched.cgroup_parent.path if sched.cgroup_parent else "",
    })
    return params + packaged_text("verify_guest.sh")


def image_spec(files: CellFiles, sched: Scheduler) -> builder.ImageSpec:
    from ktstr.run.image import init_script

    guest_bin = sched_guest_path(sched)
    assert guest_bin is not None
    binaries = {guest_bin: files.binary, "/usr/bin/veristat": files.veristat,
                "/usr/bin/bpftool": files.bpftool, "/usr/bin/ktstr-proginfo": files.proginfo}
    obj = {f"{OBJ_DIR}/{files.bpf_object.name}": files.bpf_object} if files.bpf_object else {}
    return builder.ImageSpec(init=init_script(), binaries=binaries, files=obj)


def segment_files(script: str, sched: Scheduler) -> dict[str, bytes]:
    return {
        "/ktstr/params.sh": params_sh({"KTSTR_MODE": "exec"}).encode(),
        "/ktstr/cmd.sh": script.encode(),
        "/ktstr/sched_args": args_file(sched.merged_args()).encode(),
        "/ktstr/sysctls": sysctls_file(sched.sysctls).encode(),
    }


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
        from ktstr.run.boot import BootOutcome, boot
        from ktstr.run.rundir import finish_run_dir, make_run_dir
        from ktstr.vm.argv import TcgThreading, kernel_cmdline

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
        initrd = builder.compose(builder.build_base(image_spec(files, sched)),
                                 builder.run_segment(segment_files(guest_script(files, sched),
                                                                   sched)),
                                 run_dir / "initrd.img")
        memory = vm_memory_mb(cell.topology, MIN_MEMORY_MB)

        def go(choice: AccelChoice) -> BootOutcome:
            return boot(kernel=kernel.image_path, initrd=initrd,
                        cmdline=kernel_cmdline(user_kargs=sched.kargs), topology=cell.topology,
                        accel=choice, run_dir=run_dir, work_timeout_s=WORK_TIMEOUT_S,
                        memory_mb=memory, expect_exec=True, name=cell.id)

        outcome = go(accel)
        if outcome.vm_outcome is VmOutcome.EMULATOR_FAULT and \
                accel.tcg_threading is TcgThreading.MULTI:
            log.warning("%s: emulator fault under multi-threaded TCG; retrying single-threaded",
                        cell.id)
            accel = accel.model_copy(update={"tcg_threading": TcgThreading.SINGLE})
            outcome = go(accel)
        base = base.model_copy(update={"vm_outcome": outcome.vm_outcome,
                                       "vm_detail": outcome.detail, "boot_s": outcome.boot_s})
        if outcome.exec_result is None:
            verdict, why = judge_vm(outcome.vm_outcome, outcome.detail)
            detail, reasons = base, [why]
            stdout = ""
        else:
            stdout = outcome.exec_result.stdout
            verdict, reasons, detail = judge_cell(
                cell, guestout.split_sections(stdout),
                has_object=files.bpf_object is not None, base=base)
        if verdict is not Outcome.PASS:
            logs = self.store.log_dir(cell.id)
            (logs / "guest-output.txt").write_text(stdout)
            (logs / "console.txt").write_text(outcome.console_tail or outcome.panic_text)
            head, progs = guestout.split_verbose_log(
                guestout.split_sections(stdout).get("verifier_log", ""))
            parts = [head] + [f"=== {n}\n{t}" for n, t in progs.items()]
            (logs / "verifier.log").write_text(guestout.collapse_repeats("\n".join(parts)))
            detail = detail.model_copy(update={"log_dir": str(logs)})
        finish_run_dir(run_dir, keep=False)
        return CellResult(id=cell.id, kind="verifier", outcome=verdict, reasons=reasons,
                          detail=detail.model_dump(mode="json"),
                          duration_s=time.monotonic() - t0)
