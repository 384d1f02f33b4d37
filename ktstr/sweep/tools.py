"""Host-built guest helpers for the verifier sweep, cached by content.

``ktstr-proginfo`` (``proginfo.c``) prints ``bpf_prog_info.verified_insns`` for every
loaded program; it is compiled once, statically, with the host's gcc.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from ktstr import paths
from ktstr.errors import InfraError, UserError
from ktstr.kernel.locking import file_lock

PROGINFO = "ktstr-proginfo"


def packaged_text(name: str) -> str:
    """A text file shipped in ``ktstr.sweep`` (the guest script, the C helper)."""
    return resources.files("ktstr.sweep").joinpath(name).read_text()


def compile_argv(src: Path, dest: Path) -> list[str]:
    return ["gcc", "-O2", "-static", "-Wall", "-o", str(dest), str(src)]


def proginfo_binary(cache_root: Path | None = None) -> Path:
    """The compiled helper, built on first use under ``<cache>/tools``."""
    source = packaged_text("proginfo.c")
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    tools = (cache_root or paths.cache_root()) / "tools"
    dest = tools / f"{PROGINFO}-{digest}"
    if dest.is_file():
        return dest
    if shutil.which("gcc") is None:
        raise UserError("gcc is needed to build the ktstr-proginfo guest helper: install gcc "
                        "and libc6-dev (scripts/setup.sh)")
    with file_lock(tools / ".locks" / f"{PROGINFO}.lock", what="build ktstr-proginfo"):
        if dest.is_file():
            return dest
        src = tools / f".{PROGINFO}-{digest}.c"
        tmp = tools / f".{PROGINFO}-{digest}.tmp-{os.getpid()}"
        src.write_text(source)
        argv = compile_argv(src, tmp)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise InfraError(f"could not run {argv[0]}: {exc}") from exc
        if proc.returncode != 0:
            raise InfraError(f"building {PROGINFO} failed (exit {proc.returncode}): "
                             f"{' '.join(argv)}\n{proc.stderr[-2000:]}")
        tmp.replace(dest)
        src.unlink(missing_ok=True)
    return dest
