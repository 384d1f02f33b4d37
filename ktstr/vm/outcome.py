"""How a VM's run ended, as the VM layer sees it (``ktstr.results`` reports it)."""

from __future__ import annotations

import enum


class VmOutcome(enum.StrEnum):
    OK = "ok"
    CRASHED = "crashed"  # kernel panic
    TIMEOUT = "timeout"  # the guest did not answer in time
    EMULATOR_FAULT = "emulator_fault"  # TCG static-key Oops: infrastructure, retried
    EXITED = "exited"  # QEMU exited early
    LAUNCH_FAILED = "launch_failed"
