"""Native programs that run in the guest: ``ktstr-agent`` (``agent.c`` and the files
it is split into, with the scenario worker ``worker.c`` as its ``worker`` subcommand),
and any other small C helper through ``static_binary`` (the verifier sweep's
``ktstr-proginfo``). The agent links jansson statically (Debian's libjansson-dev).

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
from ktstr.resources import package_path

HERE = package_path(__name__)
SOURCE = HERE / "worker.c"
BINARY_NAME = "ktstr-worker"
#: the agent's sources, one file per job (agent.h declares what they share)
AGENT_SOURCES = ("agent.c", "emit.c", "util.c", "setup.c", "sched.c", "workload.c",
                 "scenario.c", "topology.c", "verify.c", "worker.c", "trace.c",
                 "unpack.c")
AGENT_NAME = "ktstr-agent"
#: where the agent lives in the guest (the init runs it; scenario workers are
#: ``ktstr-agent worker run ...``)
AGENT_GUEST_PATH = f"/usr/bin/{AGENT_NAME}"
CFLAGS = ("-O2", "-static", "-Wall", "-Wextra")
_SETUP_HINT = "install gcc and libc6-dev (scripts/setup.sh does)"


def native_dir() -> Path:
    return cache_root() / "native"


def source_hash(source: bytes, compiler: str = "gcc", extra: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    h.update(" ".join((compiler, *CFLAGS, *extra)).encode())
    h.update(b"\0")
    h.update(source)
    return h.hexdigest()[:16]


def static_binary(source_path: Path | tuple[Path, ...], name: str, compiler: str = "gcc",
                  *, libs: tuple[str, ...] = (), defines: tuple[str, ...] = ()) -> Path:
    """The sources compiled with ``compiler CFLAGS`` into a cached static binary
    ``<cache>/native/<hash>/NAME``; built now if needed, under a lock. ``UserError`` with
    the compiler's message when gcc, the static C library or a static library in
    ``libs`` is missing."""
    paths = (source_path,) if isinstance(source_path, Path) else source_path
    headers = sorted({h for p in paths for h in p.parent.glob("*.h")})
    source = b"\0".join(p.read_bytes() for p in (*paths, *headers))
    extra = (*defines, *libs)
    out_dir = native_dir() / source_hash(source, compiler, extra)
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
            done = subprocess.run([cc, *CFLAGS, *defines, "-o", tmp, *map(str, paths), *libs],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                hint = _SETUP_HINT
                if "cannot find -lc" in done.stderr:
                    hint = "the static C library (libc.a) is missing: " + _SETUP_HINT
                elif "jansson" in done.stderr:
                    hint = ("the static jansson library is missing: install libjansson-dev "
                            "(scripts/setup.sh does)")
                raise UserError(f"building {name} failed ({hint}):\n"
                                f"{done.stderr.strip()[-2000:]}")
            os.chmod(tmp, 0o755)
            os.replace(tmp, binary)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return binary


def worker_binary(compiler: str = "gcc") -> Path:
    """The cached static ``ktstr-worker`` alone (tests on the host), built if needed."""
    return static_binary(SOURCE, BINARY_NAME, compiler)


def agent_binary(compiler: str = "gcc") -> Path:
    """The cached static ``ktstr-agent``, built now if needed."""
    return static_binary(tuple(HERE / s for s in AGENT_SOURCES), AGENT_NAME, compiler,
                         libs=("-ljansson",), defines=("-DKTSTR_AGENT",))
