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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def cpu_budget() -> int:
    """``$KTSTR_CPU_BUDGET``, else the host's CPUs: the budget of a VM whose run names
    none (``RunRequest.cpu_budget``, from ``--ktstr-cpu-budget``, comes first)."""
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


#: a wait for tokens longer than this is said (then every REPORT_EVERY_S)
QUIET_WAIT_S = 2.0
REPORT_EVERY_S = 15.0


@contextlib.contextmanager
def _saying_while_waiting(say: Callable[[str], None] | None, need: int,
                          budget: int) -> Iterator[None]:
    """While the block runs (blocked on a lock), say every so often how long it has
    waited for how many CPUs; a blocked flock cannot speak for itself."""
    if say is None:
        yield
        return
    done = threading.Event()
    t0 = time.monotonic()

    def report() -> None:
        wait_s = QUIET_WAIT_S
        while not done.wait(wait_s):
            say(f"waiting for {need} of the {budget} host CPUs VMs may use (other VMs hold "
                f"them; --ktstr-cpu-budget / KTSTR_CPU_BUDGET): {time.monotonic() - t0:.0f} s "
                "so far")
            wait_s = REPORT_EVERY_S

    reporter = threading.Thread(target=report, name="cpu-token-wait", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        done.set()
        reporter.join()
        waited = time.monotonic() - t0
        if waited > QUIET_WAIT_S:
            say(f"got {need} host CPU(s) after waiting {waited:.0f} s")


@contextlib.contextmanager
def cpu_tokens(vcpus: int, budget: int, directory: Path | None = None,
               say: Callable[[str], None] | None = None) -> Iterator[int]:
    """Hold ``min(vcpus, budget)`` tokens for the duration of the block; ``say`` hears
    about a wait longer than a moment."""
    need = max(1, min(vcpus, budget))
    d = directory or slots_dir()
    d.mkdir(parents=True, exist_ok=True)
    held: list[int] = []
    gate = os.open(d / "gate", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with _saying_while_waiting(say, need, budget):
            _take(gate, d, need, budget, held)
        yield need
    finally:
        for fd in held:
            os.close(fd)
        os.close(gate)


def _take(gate: int, d: Path, need: int, budget: int, held: list[int]) -> None:
    """Take ``need`` slot locks (appended to ``held``) under the gate lock."""
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
