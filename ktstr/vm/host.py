"""Host facts the VM layer depends on: QEMU version, accelerator choice, time scaling.

Accelerator ``auto``: KVM when ``/dev/kvm`` can run a standard kernel, else TCG. A
``/dev/kvm`` that opens is not enough (a nested paravirtual KVM kills stock kernels in
the decompressor and QEMU then hangs), so ``auto`` relies on a one-time *boot probe*
whose result is cached per (host kernel, QEMU version) in ``<cache>/kvm-probe.json``.

Timeout rule: every guest-side bound is ``base x scale`` where scale is 1 under KVM and
``TCG_SCALE`` (6) under TCG, plus ``TCG_PER_VCPU_S`` seconds per vCPU beyond 4 under TCG
(MTTCG on a small host serialises vCPUs). ``KTSTR_TIMEOUT_SCALE`` multiplies the result.
Single-threaded TCG (the retry after an emulator fault, or old QEMU) runs every vCPU on
one host thread: its bounds are multiplied again by ``min(vCPUs, host CPUs)``, the most
it can be slower than multi-threaded TCG. ``AccelChoice.bound`` applies the whole rule.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.declare.topology import Topology
from ktstr.errors import InfraError, UserError
from ktstr.image.cache import identity, read_json, write_atomic
from ktstr.paths import cache_root
from ktstr.vm.argv import Accel, TcgThreading

log = logging.getLogger(__name__)

TCG_SCALE = 6.0
TCG_PER_VCPU_S = 1.5
#: first QEMU release whose multi-threaded TCG is safe for these guests (see LAB notes)
SAFE_MTTCG_MAJOR = 8


class AccelRequest(enum.StrEnum):
    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class AccelChoice(Frozen):
    accel: Accel
    tcg_threading: TcgThreading = TcgThreading.MULTI
    reason: str

    def describe(self) -> str:
        if self.accel is Accel.KVM:
            return f"KVM ({self.reason})"
        return f"TCG thread={self.tcg_threading.value} ({self.reason})"

    def slowdown(self, topology: Topology) -> float:
        """How much slower than multi-threaded emulation this choice runs at worst."""
        if self.accel is Accel.TCG and self.tcg_threading is TcgThreading.SINGLE:
            return float(max(1, min(topology.total_cpus, os.cpu_count() or 1)))
        return 1.0

    def bound(self, base_s: float, topology: Topology) -> float:
        """A guest-side bound of ``base_s`` (KVM seconds) under this accelerator."""
        return scaled_timeout(base_s, self.accel, topology) * self.slowdown(topology)

    def explain(self, base_s: float, topology: Topology) -> str:
        """How ``bound(base_s)`` came about, for verdicts: ``10 s x 6 (TCG) = 60 s``."""
        got = self.bound(base_s, topology)
        if got == base_s:
            return f"{got:g} s"
        how = "TCG" if self.accel is Accel.TCG else "KTSTR_TIMEOUT_SCALE"
        if self.slowdown(topology) > 1:
            how += f" thread=single x{self.slowdown(topology):g}"
        return f"{base_s:g} s scaled for {how} = {got:.0f} s"


class KvmProbe(Frozen):
    usable: bool
    reason: str
    host_release: str
    qemu_version: str


def find_qemu(name: str = "qemu-system-x86_64") -> str:
    path = os.environ.get("KTSTR_QEMU") or shutil.which(name)
    if not path:
        raise UserError(
            f"{name} not found: run scripts/setup.sh (installs QEMU 10 from "
            "bookworm-backports) or set KTSTR_QEMU to a QEMU binary"
        )
    return path


def qemu_version(qemu: str) -> tuple[int, int, int]:
    """``qemu --version`` as (major, minor, micro), remembered in
    ``<cache>/qemu-version.json`` while the binary's identity (device, inode, size,
    mtime) is unchanged: running QEMU only to ask took 0.03-0.2 s in every ktstr
    process (it loads ~100 shared libraries), twice per run before this memo."""
    return _qemu_version(os.path.realpath(shutil.which(qemu) or qemu))


def _version_memo_path() -> Path:
    return cache_root() / "qemu-version.json"


@functools.cache
def _qemu_version(real: str) -> tuple[int, int, int]:
    ident = identity(real)
    try:
        memo = read_json(_version_memo_path()) or {}
    except OSError:
        memo = {}
    hit = memo.get(real)
    if ident is not None and isinstance(hit, dict) and hit.get("identity") == list(ident):
        ver = hit.get("version")
        if isinstance(ver, list) and len(ver) == 3 and all(isinstance(v, int) for v in ver):
            return ver[0], ver[1], ver[2]
    found = _ask_qemu_version(real)
    if ident is not None:
        memo[real] = {"identity": list(ident), "version": list(found)}
        try:  # a failure only costs the memo
            write_atomic(_version_memo_path(), json.dumps(memo, indent=1).encode(),
                         durable=False)
        except OSError as exc:
            log.debug("QEMU version memo not written: %s", exc)
    return found


def _ask_qemu_version(qemu: str) -> tuple[int, int, int]:
    try:
        out = subprocess.run(
            [qemu, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise InfraError(f"cannot run {qemu} --version: {exc}") from exc
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise InfraError(f"cannot read the QEMU version from {out!r}")
    major, minor, micro = m.groups()
    return int(major), int(minor), int(micro)


def kvm_device_ok() -> tuple[bool, str]:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except FileNotFoundError:
        return False, "/dev/kvm does not exist"
    except OSError as exc:
        return False, f"/dev/kvm cannot be opened: {exc.strerror}"
    os.close(fd)
    return True, "/dev/kvm opens"


def _probe_path() -> Path:
    return cache_root() / "kvm-probe.json"


def cached_probe(host_release: str, qemu_ver: str) -> KvmProbe | None:
    try:
        data = json.loads(_probe_path().read_text(encoding="utf-8"))
        probe = KvmProbe.model_validate(data)
    except (OSError, ValueError):
        return None
    if probe.host_release != host_release or probe.qemu_version != qemu_ver:
        return None
    return probe


def store_probe(probe: KvmProbe) -> None:
    path = _probe_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(probe.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)


def choose_accel(
    request: AccelRequest,
    qemu: str,
    *,
    boot_probe: Callable[[], tuple[bool, str]] | None = None,
) -> AccelChoice:
    """Pick the accelerator. ``boot_probe`` boots a real kernel under KVM and says
    whether it came up; it runs at most once per host kernel and QEMU version."""
    ver = qemu_version(qemu)
    threading = TcgThreading.MULTI
    tcg_note = ""
    if ver[0] < SAFE_MTTCG_MAJOR:
        threading = TcgThreading.SINGLE
        tcg_note = (f"; QEMU {'.'.join(map(str, ver))} multi-threaded TCG corrupts guests, "
                    "using thread=single (install QEMU 10: scripts/setup.sh)")
    if request is AccelRequest.TCG:
        return AccelChoice(accel=Accel.TCG, tcg_threading=threading,
                           reason="requested" + tcg_note)
    ok, why = kvm_device_ok()
    if request is AccelRequest.KVM:
        if not ok:
            raise UserError(f"--accel kvm: {why}; use --accel tcg or auto")
        return AccelChoice(accel=Accel.KVM, reason="requested")
    if not ok:
        return AccelChoice(accel=Accel.TCG, tcg_threading=threading, reason=why + tcg_note)
    release = os.uname().release
    qver = ".".join(map(str, ver))
    probe = cached_probe(release, qver)
    if probe is None and boot_probe is not None:
        usable, reason = boot_probe()
        probe = KvmProbe(usable=usable, reason=reason, host_release=release, qemu_version=qver)
        store_probe(probe)
    if probe is None:
        return AccelChoice(accel=Accel.TCG, tcg_threading=threading,
                           reason="KVM not yet probed" + tcg_note)
    if probe.usable:
        return AccelChoice(accel=Accel.KVM, reason="KVM boot probe passed")
    return AccelChoice(accel=Accel.TCG, tcg_threading=threading,
                       reason=f"KVM unusable: {probe.reason}" + tcg_note)


def timeout_scale(accel: Accel, topology: Topology) -> float:
    extra = float(os.environ.get("KTSTR_TIMEOUT_SCALE", "1") or 1)
    if accel is Accel.KVM:
        return 1.0 * extra
    return TCG_SCALE * extra


def scaled_timeout(base_s: float, accel: Accel, topology: Topology) -> float:
    """``base_s`` under KVM; scaled for TCG per the rule in the module docstring."""
    t = base_s * timeout_scale(accel, topology)
    if accel is Accel.TCG:
        t += TCG_PER_VCPU_S * max(0, topology.total_cpus - 4)
    return t
