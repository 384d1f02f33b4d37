"""A machine-wide CPU budget for VMs, shared by every pytest-xdist worker and sweep.

Policy: ``budget`` tokens (default: the host's CPUs); a VM holds
``min(vcpus, budget)`` tokens while it runs. Under TCG each vCPU is a host thread, so
this keeps parallel VMs from starving each other: two 1-vCPU VMs run side by side on a
2-CPU host, while a 4-vCPU VM runs alone. Tokens are ``flock`` locks on slot files, taken
one by one while holding a gate lock, so waiting is blocking (no polling) and no two
waiters can deadlock; the kernel drops the locks if a holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cpu_budget() -> int:
    """``$KTSTR_CPU_BUDGET`` (set by ``--ktstr-cpu-budget``), else the host's CPUs."""
    env = os.environ.get("KTSTR_CPU_BUDGET", "")
    if env.strip():
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            from ktstr.errors import UserError

            raise UserError(f"KTSTR_CPU_BUDGET={env!r}: give a whole number of CPUs >= 1")
        return value
    return len(os.sched_getaffinity(0))


def slots_dir() -> Path:
    return Path(os.environ.get("KTSTR_BUDGET_DIR")
                or Path(tempfile.gettempdir()) / f"ktstr-cpu-slots-{os.getuid()}")


@contextlib.contextmanager
def cpu_tokens(vcpus: int, budget: int, directory: Path | None = None) -> Iterator[int]:
    """Hold ``min(vcpus, budget)`` tokens for the duration of the block."""
    need = max(1, min(vcpus, budget))
    d = directory or slots_dir()
    d.mkdir(parents=True, exist_ok=True)
    held: list[int] = []
    gate = os.open(d / "gate", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fds = [os.open(d / f"slot-{budget}-{i}", os.O_RDWR | os.O_CREAT, 0o600)
                   for i in range(budget)]
            waiting: list[int] = []
            for fd in fds:  # first every free slot ...
                if len(held) == need:
                    waiting.append(fd)
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held.append(fd)
                except BlockingIOError:
                    waiting.append(fd)
            for fd in waiting:  # ... then block, in order, only while short
                if len(held) < need:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    held.append(fd)
                else:
                    os.close(fd)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield need
    finally:
        for fd in held:
            os.close(fd)
        os.close(gate)
