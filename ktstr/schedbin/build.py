"""Building the example schedulers, bpftool and veristat from a source tree (LAB.md §3, §4).

The command lines are pure functions; ``Toolchain`` names the compiler tools, and
``run_step`` runs one step with its output appended to the build log.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError

log = logging.getLogger(__name__)

#: clang-19 builds, but the verifier rejects scx_qmap's arena code: use 22 (LAB.md §3)
DEFAULT_LLVM = "22"


BPFTOOL_SKIPS = ("SKIP_LLVM=1", "SKIP_LIBBFD=1", "SKIP_CRYPTO=1")


class Toolchain(Frozen):
    llvm: str = DEFAULT_LLVM
    jobs: int = 2

    @property
    def clang(self) -> str:
        return f"clang-{self.llvm}"

    def make_vars(self) -> list[str]:
        """``SKIP_*``: bpftool without its optional libraries (JIT disassembly with libLLVM
        or libbfd, program signing with libcrypto); the guest only runs ``prog show``, and
        libLLVM's closure alone is ~200 MB sent into every verifier cell. Kernel trees
        whose bpftool Makefile predates the switches ignore them."""
        return [f"CLANG={self.clang}", f"LLVM_STRIP=llvm-strip-{self.llvm}",
                f"LLVM_CONFIG=llvm-config-{self.llvm}", *BPFTOOL_SKIPS]

    def missing(self) -> list[str]:
        tools = [self.clang, f"llvm-strip-{self.llvm}", f"llvm-config-{self.llvm}", "make",
                 "gcc", "pkg-config"]
        return [t for t in tools if shutil.which(t) is None]


def extract_vmlinux_argv(src: Path, vmlinuz: Path) -> list[str]:
    """Writes the uncompressed vmlinux (with .BTF) to stdout."""
    return [str(src / "scripts" / "extract-vmlinux"), str(vmlinuz)]


def make_argv(src: Path, out: Path, vmlinux: Path, tc: Toolchain) -> list[str]:
    return ["make", "-C", str(src / "tools" / "sched_ext"), f"-j{tc.jobs}", f"O={out}",
            *tc.make_vars(), f"VMLINUX_BTF={vmlinux}"]


def veristat_argv(src: Path, out: Path, dest: Path) -> list[str]:
    return ["gcc", "-O2", "-I", str(out / "build" / "include"),
            "-I", str(src / "tools" / "include"), "-I", str(src / "tools" / "include" / "uapi"),
            "-o", str(dest), str(src / "tools" / "testing" / "selftests" / "bpf" / "veristat.c"),
            str(out / "build" / "obj" / "libbpf" / "libbpf.a"),
            "-lelf", "-lz", "-lm", "-lpthread"]


def run_step(argv: Sequence[str], step: str, log_file: Path, *,
             stdout_to: Path | None = None) -> None:
    """Run one build step; output goes to ``log_file`` (stdout to ``stdout_to`` if given)."""
    with log_file.open("a") as logf:
        logf.write(f"\n$ {' '.join(argv)}\n")
        logf.flush()
        try:
            if stdout_to is not None:
                with stdout_to.open("wb") as out:
                    proc = subprocess.run(list(argv), stdout=out, stderr=logf, check=False)
            else:
                proc = subprocess.run(list(argv), stdout=logf, stderr=subprocess.STDOUT,
                                      check=False, env={**os.environ, "LC_ALL": "C"})
        except OSError as exc:
            raise InfraError(f"build step {step!r} could not start: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n  ".join(log_file.read_text(errors="replace").strip().splitlines()[-15:])
        raise InfraError(f"build step {step!r} failed (exit {proc.returncode}); full log "
                         f"{log_file}:\n  {tail}")


def tool_version(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    lines = proc.stdout.strip().splitlines()
    return lines[0] if lines else "unknown"


def check_toolchain(tc: Toolchain) -> None:
    missing = tc.missing()
    if missing:
        raise UserError(
            f"missing build tools: {', '.join(missing)}. Install them with scripts/setup.sh "
            f"(clang-{tc.llvm} and llvm-{tc.llvm} come from bookworm-security; also libelf-dev "
            "zlib1g-dev libzstd-dev make gcc pkg-config)"
        )


def strip_debug_argv(tc: Toolchain, binaries: Sequence[Path]) -> list[str]:
    """Drop the host programs' DWARF (``-g`` in the examples' Makefile): about half of
    each file, and every byte of it crosses the guest channel before each run. Symbols
    stay, and the BPF program each scheduler embeds is data, which this leaves alone."""
    return [f"llvm-strip-{tc.llvm}", "--strip-debug", *map(str, binaries)]


def collect(out: Path, dest: Path, veristat: Path) -> tuple[list[str], list[str]]:
    """Copy binaries, bpftool, veristat and the linked BPF objects into ``dest``.

    Returns (schedulers, tools).
    """
    bins = dest / "bin"
    objs = dest / "obj"
    bins.mkdir()
    objs.mkdir()
    schedulers = []
    for binary in sorted((out / "build" / "bin").iterdir()):
        linked = out / "build" / "obj" / "sched_ext" / f"{binary.name}.bpf.linked3.o"
        if not linked.is_file():
            log.warning("no BPF object for %s; skipped", binary.name)
            continue
        shutil.copy2(binary, bins / binary.name)
        shutil.copy2(linked, objs / f"{binary.name}.bpf.o")
        schedulers.append(binary.name)
    if not schedulers:
        raise InfraError(f"the build produced no schedulers in {out / 'build' / 'bin'}")
    shutil.copy2(out / "build" / "sbin" / "bpftool", bins / "bpftool")
    shutil.copy2(veristat, bins / "veristat")
    return schedulers, ["bpftool", "veristat"]
