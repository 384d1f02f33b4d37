"""The one-time KVM boot probe behind ``--accel auto``."""

from __future__ import annotations

import logging

from ktstr.declare.topology import Topology
from ktstr.image import builder
from ktstr.kernel.cache import CachedKernel
from ktstr.results.model import VmOutcome
from ktstr.run.boot import boot
from ktstr.run.image import image_spec
from ktstr.run.params import exec_plan
from ktstr.run.rundir import finish_run_dir, make_run_dir
from ktstr.vm.argv import Accel, kernel_cmdline
from ktstr.vm.host import AccelChoice, AccelRequest, choose_accel, find_qemu

log = logging.getLogger(__name__)

#: a stock kernel under working KVM says hello in well under this (TCG scale is not used)
PROBE_TIMEOUT_S = 45.0


def kvm_boot_probe(kernel: CachedKernel) -> tuple[bool, str]:
    """Boot ``kernel`` under KVM running ``true``; usable if the guest answers."""
    log.warning("probing whether KVM can boot %s (once per host kernel and QEMU)",
                kernel.release or kernel.version)
    run_dir = make_run_dir("ktstr-probe-")
    try:
        outcome = boot(
            kernel=kernel.image_path, image=builder.build_base(image_spec()),
            plan=exec_plan("true"),
            cmdline=kernel_cmdline(),
            topology=Topology(1, 1, 1, 1),
            accel=AccelChoice(accel=Accel.KVM, reason="probe"), run_dir=run_dir,
            work_timeout_s=PROBE_TIMEOUT_S, expect_exec=True, name="kvm-probe",
        )
    finally:
        finish_run_dir(run_dir, keep=False)
    if outcome.vm_outcome is VmOutcome.OK and outcome.exec_result is not None:
        return True, f"booted {kernel.release or kernel.version} in {outcome.boot_s or 0:.1f} s"
    if outcome.vm_outcome is VmOutcome.LAUNCH_FAILED:
        why = outcome.detail.splitlines()[-1] if outcome.detail else "QEMU failed"
    else:
        why = (outcome.console_tail.strip().splitlines()[-1:] or [outcome.detail])[0]
    return False, f"{outcome.vm_outcome.value}: {why[:300]}"


def select_accel(request: AccelRequest, kernel: CachedKernel) -> AccelChoice:
    """The accelerator for a VM of ``kernel``: ``auto`` probes KVM with this kernel once."""
    return choose_accel(request, find_qemu(), boot_probe=lambda: kvm_boot_probe(kernel))
