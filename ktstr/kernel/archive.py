"""The Debian archive as ktstr sees it: an ``ArchiveIndex`` protocol and ``PrivateApt``.

``PrivateApt`` drives ``apt-get``/``apt-cache`` confined to the private configuration of
``apt.py``. ``update`` runs when the lists are missing or older than ``max_age``, under a
file lock, and fails loudly (``InfraError`` naming the step) when the archive is
unreachable or a signature does not verify. Tests use ``ktstr.testing.FakeArchive``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.kernel.apt import AptLayout, Mirrors, apt_argv, read_system_sources
from ktstr.kernel.locking import file_lock

log = logging.getLogger(__name__)

#: (label, bytes done, bytes expected or None)
ProgressFn = Callable[[str, int, int | None], None]

DEFAULT_MAX_AGE = dt.timedelta(hours=24)
MAX_AGE_ENV = "KTSTR_APT_MAX_AGE_HOURS"


class PackageVersion(Frozen):
    """One downloadable version of one binary package."""

    package: str
    version: str
    suite: str

    @property
    def ref(self) -> str:
        return f"{self.package}={self.version}"


class ArchiveIndex(Protocol):
    """What the resolver and fetcher need from an archive."""

    def package_names(self, prefix: str) -> list[str]: ...

    def versions(self, packages: Sequence[str]) -> list[PackageVersion]: ...

    def download(self, wanted: Sequence[PackageVersion], dest: Path,
                 progress: ProgressFn | None = None) -> list[Path]: ...


def parse_madison(text: str) -> list[PackageVersion]:
    """``apt-cache madison`` lines: ``pkg | version | URI suite/component arch Packages``."""
    out: list[PackageVersion] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or not parts[2].endswith("Packages"):
            continue
        words = parts[2].split()
        if len(words) < 2:
            continue
        out.append(PackageVersion(package=parts[0], version=parts[1],
                                  suite=words[1].split("/")[0]))
    return out


def parse_control_sizes(text: str) -> dict[str, int]:
    """``Package``/``Version``/``Size`` of ``apt-cache show`` records -> ``{"p=v": size}``."""
    sizes: dict[str, int] = {}
    for record in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in record.splitlines():
            if line and line[0] not in " \t" and ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if {"Package", "Version", "Size"} <= fields.keys():
            sizes[f"{fields['Package']}={fields['Version']}"] = int(fields["Size"])
    return sizes


def update_problems(output: str) -> list[str]:
    """Lines of ``apt-get update`` output that mean the lists cannot be trusted/complete."""
    markers = ("GPG error", "NO_PUBKEY", "not signed", "Failed to fetch", "EXPKEYSIG",
               "BADSIG", "failed to download")
    return [line.strip() for line in output.splitlines()
            if line.startswith(("Err:", "E:", "W:")) or any(m in line for m in markers)]


def max_age_from_env() -> dt.timedelta:
    raw = os.environ.get(MAX_AGE_ENV)
    if not raw:
        return DEFAULT_MAX_AGE
    try:
        return dt.timedelta(hours=float(raw))
    except ValueError as exc:
        raise UserError(f"{MAX_AGE_ENV}={raw!r} is not a number of hours") from exc


class PrivateApt:
    """The real archive, through apt confined to ``layout``."""

    def __init__(self, layout: AptLayout | None = None, *, max_age: dt.timedelta | None = None,
                 mirrors: Mirrors | None = None) -> None:
        self.layout = layout or AptLayout(root=paths.apt_dir())
        self.max_age = max_age if max_age is not None else max_age_from_env()
        self._mirrors = mirrors
        self._ready = False

    # -- setup -------------------------------------------------------------------------
    def ensure_updated(self, *, force: bool = False) -> None:
        if self._ready and not force:
            return
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise UserError(
                "apt-get/dpkg-deb not found: Debian kernels cannot be fetched on this machine. "
                "Pass a kernel as a path instead: a bzImage/vmlinuz file (config beside it) "
                "or a built kernel tree (ktstr kernel fetch /path/to/linux)"
            )
        mirrors = self._mirrors or read_system_sources()
        with file_lock(self.layout.lock_file, what="apt update"):
            self.layout.materialize(mirrors)
            if force or self._stale():
                self._update()
        self._ready = True

    def _stale(self) -> bool:
        stamp = self.layout.stamp
        if not stamp.exists() or not any(self.layout.lists.glob("*_Packages*")):
            return True
        age = dt.datetime.now().timestamp() - stamp.stat().st_mtime
        return age > self.max_age.total_seconds()

    def _update(self) -> None:
        log.info("updating the private apt lists under %s", self.layout.root)
        proc = self._run("apt-get", "update", step="apt-get update")
        problems = update_problems(proc.stdout + proc.stderr)
        if problems:
            raise InfraError(
                "step 'apt-get update' (private lists) failed: the archive is unreachable or "
                "a signature did not verify:\n  " + "\n  ".join(problems[:8])
            )
        self.layout.stamp.touch()

    def _run(self, tool: str, *args: str, step: str,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = apt_argv(self.layout, tool, *args)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd,
                                  env={**os.environ, "LC_ALL": "C"}, check=False)
        except OSError as exc:
            raise InfraError(f"step {step!r} could not start {tool}: {exc}") from exc
        if proc.returncode != 0:
            tail = "\n  ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise InfraError(f"step {step!r} failed (exit {proc.returncode}):\n  {tail}")
        return proc

    # -- queries -----------------------------------------------------------------------
    def package_names(self, prefix: str) -> list[str]:
        self.ensure_updated()
        proc = self._run("apt-cache", "pkgnames", prefix, step="apt-cache pkgnames")
        return sorted(set(proc.stdout.split()))

    def versions(self, packages: Sequence[str]) -> list[PackageVersion]:
        if not packages:
            return []
        self.ensure_updated()
        proc = self._run("apt-cache", "madison", *packages, step="apt-cache madison")
        return parse_madison(proc.stdout)

    def sizes(self, wanted: Sequence[PackageVersion]) -> dict[str, int]:
        self.ensure_updated()
        proc = self._run("apt-cache", "show", *[w.ref for w in wanted], step="apt-cache show")
        return parse_control_sizes(proc.stdout)

    # -- download ----------------------------------------------------------------------
    def download(self, wanted: Sequence[PackageVersion], dest: Path,
                 progress: ProgressFn | None = None) -> list[Path]:
        """``apt-get download`` into ``dest`` (which must be empty), reporting bytes."""
        self.ensure_updated()
        total = sum(self.sizes(wanted).values()) or None
        label = ", ".join(w.package for w in wanted)
        argv = apt_argv(self.layout, "apt-get", "download", *[w.ref for w in wanted])
        log.info("downloading %s", label)
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(dest, label, total, progress, stop),
                                   daemon=True)
        try:
            proc = subprocess.Popen(argv, cwd=dest, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    env={**os.environ, "LC_ALL": "C"})
        except OSError as exc:
            raise InfraError(f"step 'apt-get download' could not start: {exc}") from exc
        watcher.start()
        try:
            out, _ = proc.communicate()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            stop.set()
            watcher.join()
        if proc.returncode != 0:
            tail = "\n  ".join(out.strip().splitlines()[-8:])
            raise InfraError(f"step 'apt-get download {label}' failed "
                             f"(exit {proc.returncode}):\n  {tail}")
        debs = sorted(dest.glob("*.deb"))
        if progress is not None:
            progress(label, sum(d.stat().st_size for d in debs), total)
        return debs


def _watch(dest: Path, label: str, total: int | None, progress: ProgressFn | None,
           stop: threading.Event) -> None:
    if progress is None:
        return
    while not stop.wait(0.5):
        done = 0
        for f in dest.iterdir():
            try:
                done += f.stat().st_size
            except OSError:
                continue
        progress(label, done, total)
