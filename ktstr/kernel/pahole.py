"""A pahole new enough for the tree's BTF, when the host's is not.

Why: 7.x kernels mark kfuncs with ``bpf_kfunc`` BTF decl tags that pahole >= 1.26 emits
(``--btf_features=...,decl_tag_kfuncs`` in ``scripts/Makefile.btf``); ``resolve_btfids``
reads them to rewrite the prototypes of kfuncs with implicit arguments
(``KF_IMPLICIT_ARGS``: ``scx_bpf_create_dsq(dsq_id, node)`` hides its ``aux``). Built with
bookworm's pahole 1.24, the kernel still configures with BTF and sched_ext, but its BTF
keeps the implicit argument and every scheduler fails to load (libbpf: ``func_proto ...
incompatible with vmlinux``). Measured on linux-source 7.2.13.

Debian has no newer pahole for bookworm (not in backports either), and trixie's needs
glibc 2.38. So, like a Debian kernel, trixie's ``pahole`` and the libraries it runs with
(glibc included) are downloaded through the private apt and unpacked, never installed,
into ``CACHE/tools/pahole-VERSION/``; a wrapper script runs it through that glibc's own
dynamic loader. The kernel build passes ``PAHOLE=<wrapper>`` to make.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.kernel.archive import ArchiveIndex
from ktstr.kernel.builddeps import pahole_version
from ktstr.kernel.extract import extract_debs
from ktstr.kernel.locking import file_lock, install_dir, staging_dir
from ktstr.kernel.progress import Progress

log = logging.getLogger(__name__)

#: the suite and packages of the private pahole (pahole's Depends, closed)
PRIVATE_SUITE = "trixie"
PRIVATE_PACKAGES: tuple[str, ...] = ("pahole", "libbpf1", "libdw1t64", "libelf1t64", "libc6",
                                     "zlib1g", "libzstd1", "liblzma5", "libbz2-1.0")
WRAPPER = "pahole"
_LIBDIR = "root/usr/lib/x86_64-linux-gnu"


class PaholeNeed(Frozen):
    """What the tree asks of pahole: ``PAHOLE_VERSION`` numbers (1.26 -> 126)."""

    btf: int | None = None
    kfunc_tags: int | None = None

    @property
    def minimum(self) -> int | None:
        wanted = [v for v in (self.btf, self.kfunc_tags) if v is not None]
        return max(wanted) if wanted else None


_KFUNC_TAGS = re.compile(r"test-ge, \$\(pahole-ver\), (\d+)\)[^\n]*decl_tag_kfuncs")


def kfunc_tags_need(makefile_btf: str) -> int | None:
    """The pahole version from which ``scripts/Makefile.btf`` asks for
    ``decl_tag_kfuncs`` (126 in 7.x), or None when the tree does not use them."""
    m = _KFUNC_TAGS.search(makefile_btf)
    return int(m.group(1)) if m else None


def wrapper_script(root: Path) -> str:
    """The wrapper that runs the unpacked pahole with its own glibc."""
    lib = root / _LIBDIR
    return ("#!/bin/sh\n# ktstr's private pahole (ktstr/kernel/pahole.py); do not edit\n"
            f'exec "{lib}/ld-linux-x86-64.so.2" --library-path "{lib}" '
            f'"{root}/root/usr/bin/pahole" "$@"\n')


def tools_dir() -> Path:
    return paths.cache_root() / "tools"


def host_pahole() -> tuple[str | None, int | None]:
    found = shutil.which("pahole")
    if found is None:
        return None, None
    proc = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    return found, pahole_version(proc.stdout)


def probe(path: Path) -> int | None:
    try:
        proc = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                              check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return pahole_version(proc.stdout) if proc.returncode == 0 else None


def private_pahole(archive: ArchiveIndex, progress: Progress, need: int,
                   root: Path | None = None) -> Path:
    """The wrapper of a private pahole >= ``need``, unpacked once into the cache."""
    versions = [v for v in archive.versions(list(PRIVATE_PACKAGES))
                if v.suite == PRIVATE_SUITE]
    chosen = {v.package: v for v in versions}
    missing = [p for p in PRIVATE_PACKAGES if p not in chosen]
    if missing:
        raise InfraError(f"the archive's {PRIVATE_SUITE} has no {', '.join(missing)}: cannot "
                         "provide a pahole for this kernel's BTF")
    label = f"pahole-{chosen['pahole'].version}"
    base = root if root is not None else tools_dir()
    entry = base / label
    wrapper = entry / WRAPPER
    if wrapper.is_file() and probe(wrapper):
        return wrapper
    with file_lock(base / ".locks" / f"{label}.lock", what=label):
        if wrapper.is_file() and probe(wrapper):
            return wrapper
        with staging_dir(base, label) as tmp:
            progress.step(f"host pahole too old for this kernel's BTF: unpacking "
                          f"{PRIVATE_SUITE}'s pahole {chosen['pahole'].version} and its "
                          f"libraries into {entry} (downloaded, not installed)")
            dl = tmp / "_download"
            dl.mkdir()
            debs = archive.download([chosen[p] for p in PRIVATE_PACKAGES], dl,
                                    progress.transfer)
            extract_debs(debs, tmp / "root")
            shutil.rmtree(dl)
            install_dir(tmp, entry)
        (entry / WRAPPER).write_text(wrapper_script(entry))
        (entry / WRAPPER).chmod(0o755)
    got = probe(wrapper)
    if got is None or got < need:
        raise InfraError(f"the private pahole {wrapper} does not run or is too old "
                         f"({got}); need {need // 100}.{need % 100:02d}")
    return wrapper


def choose_pahole(tree: Path, archive_factory: Callable[[], ArchiveIndex] | None,
                  progress: Progress, override: Path | None = None) -> Path | None:
    """The pahole for building ``tree``: ``override``, else the host's when it is new
    enough for the tree (None: let make use it), else the private one."""
    if override is not None:
        if probe(override) is None:
            raise UserError(f"--pahole {override} does not run ({override} --version)")
        return override
    mk = tree / "scripts" / "Makefile.btf"
    need = kfunc_tags_need(mk.read_text(errors="replace")) if mk.is_file() else None
    _, have = host_pahole()
    if need is None or (have is not None and have >= need):
        return None
    if archive_factory is None:
        raise UserError(f"this kernel's BTF needs pahole {need // 100}.{need % 100:02d} "
                        f"(kfunc decl tags) and the host has {have}: pass --pahole PATH")
    return private_pahole(archive_factory(), progress, need)
