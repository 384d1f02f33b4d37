"""File locks and atomic directory installs shared by the kernel and scheduler caches.

``file_lock`` is an ``fcntl.flock`` on a lock file: processes on one host (pytest-xdist
workers, parallel sweeps, two shells) serialize on it, and the kernel drops the lock when a
process dies, so a crash never leaves a stale lock behind. ``staging_dir`` creates a
temporary directory next to its destination, so the final ``rename`` is atomic and an
interrupted install leaves only a ``.tmp-*`` directory that readers ignore.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ktstr.errors import InfraError

log = logging.getLogger(__name__)

#: prefix of staging directories; everything starting with "." is ignored by cache readers
STAGING_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float | None = None, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` body.

    ``timeout`` None waits forever; otherwise an ``InfraError`` names the lock file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for lock %s%s", path, f" ({what})" if what else "")
            _wait_for_lock(fd, path, timeout)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _wait_for_lock(fd: int, path: Path, timeout: float | None) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise InfraError(
                    f"timed out after {timeout:.0f}s waiting for lock {path}; another ktstr "
                    "process holds it (see `fuser` on that file)"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def is_locked(path: Path) -> bool:
    """Whether another process currently holds the lock on ``path``."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def staging_dir(parent: Path, label: str) -> Iterator[Path]:
    """A fresh ``parent/.tmp-LABEL-*`` directory, removed on exit unless it was renamed."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{label}-", dir=parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def install_dir(staged: Path, final: Path) -> None:
    """Atomically put ``staged`` at ``final``; an existing ``final`` is moved aside first.

    Call with the entry's lock held.
    """
    staged.chmod(0o755)  # mkdtemp made it private
    if final.exists():
        discard_dir(final)
    os.rename(staged, final)


def discard_dir(path: Path) -> None:
    """Remove a directory so no reader ever sees it half-deleted: rename, then delete."""
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def dir_size(path: Path) -> int:
    """Total size in bytes of the regular files under ``path`` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
