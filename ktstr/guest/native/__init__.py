"""Native helpers that run in the guest: ``ktstr-worker`` (``worker.c``) here, and any
other small C helper through ``static_binary`` (the verifier sweep's ``ktstr-proginfo``).

Each is compiled on first use with ``gcc -O2 -static`` (a static binary needs no
library closure in the initramfs) and cached under
``<cache>/native/<hash of the source and the compiler command>/NAME``; an edit to the
source therefore builds a new binary and never reuses a stale one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ktstr.errors import UserError
from ktstr.image.cache import locked
from ktstr.paths import cache_root

SOURCE = Path(__file__).with_name("worker.c")
BINARY_NAME = "ktstr-worker"
#: where the worker lives in the guest
GUEST_PATH = f"/usr/bin/{BINARY_NAME}"
CFLAGS = ("-O2", "-static", "-Wall", "-Wextra")
_SETUP_HINT = "install gcc and libc6-dev (scripts/setup.sh does)"


def native_dir() -> Path:
    return cache_root() / "native"


def source_hash(source: bytes, compiler: str = "gcc") -> str:
    h = hashlib.sha256()
    h.update(" ".join((compiler, *CFLAGS)).encode())
    h.update(b"\0")
    h.update(source)
    return h.hexdigest()[:16]


def static_binary(source_path: Path, name: str, compiler: str = "gcc") -> Path:
    """``source_path`` compiled with ``compiler CFLAGS`` into a cached static binary
    ``<cache>/native/<hash>/NAME``; built now if needed, under a lock. ``UserError`` with
    the compiler's message when gcc or the static C library is missing."""
    source = source_path.read_bytes()
    out_dir = native_dir() / source_hash(source, compiler)
    binary = out_dir / name
    if binary.is_file():
        return binary
    cc = shutil.which(compiler)
    if cc is None:
        raise UserError(f"building {name} needs {compiler!r}, which is not on PATH: "
                        f"{_SETUP_HINT}")
    with locked(native_dir() / ".build.lock"):
        if binary.is_file():
            return binary
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
        os.close(fd)
        try:
            done = subprocess.run([cc, *CFLAGS, "-o", tmp, str(source_path)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                hint = _SETUP_HINT
                if "cannot find -lc" in done.stderr:
                    hint = "the static C library (libc.a) is missing: " + _SETUP_HINT
                raise UserError(f"building {name} failed ({hint}):\n"
                                f"{done.stderr.strip()[-2000:]}")
            os.chmod(tmp, 0o755)
            os.replace(tmp, binary)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return binary


def worker_binary(compiler: str = "gcc") -> Path:
    """The cached static ``ktstr-worker``, built now if needed."""
    return static_binary(SOURCE, BINARY_NAME, compiler)
