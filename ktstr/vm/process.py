"""Starting QEMU so that it dies with us, and stopping it in escalating steps."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
from collections.abc import Callable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_THP_DISABLE = 41


def _child_setup(huge_pages: bool) -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not huge_pages:
        libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)


def pdeathsig_preexec(*, huge_pages: bool = True) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when the thread that
    started it dies (also on ``kill -9`` of the harness).

    ``huge_pages=False`` also turns transparent huge pages off for the child: loading a
    snapshot writes ~120 MB of pages scattered over the guest's RAM, and with THP each
    one faults in (and zeroes) a whole 2 MB page; without, loads took 0.08-0.13 s
    instead of 0.32-0.59 s (docs/performance.md). Under KVM huge pages back the guest's
    EPT and are worth keeping."""
    return functools.partial(_child_setup, huge_pages)


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    graceful: Callable[[], None] | None = None,
    grace_s: float = 5.0,
    term_s: float = 5.0,
) -> int:
    """Stop ``proc``: ``graceful()`` (e.g. QMP quit) -> SIGTERM -> SIGKILL.

    Returns the exit code. Each step waits at most its bound.
    """
    if proc.poll() is not None:
        return proc.returncode
    if graceful is not None:
        try:
            graceful()
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("QEMU pid %d ignored quit; sending SIGTERM", proc.pid)
        except Exception as exc:  # the graceful path is best effort by design
            log.debug("graceful stop of pid %d failed: %s", proc.pid, exc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=term_s)
        except subprocess.TimeoutExpired:
            log.warning("QEMU pid %d ignored SIGTERM; sending SIGKILL", proc.pid)
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
