"""VM snapshots: a booted guest saved once per key, restored instead of booted.

A snapshot is the whole VM (memory, devices, CPU state) saved over QMP with QEMU's
``mapped-ram`` file migration right after the guest agent said hello, before it was given
any plan: sched_ext has never been enabled in it, no per-run file is in it. A later VM of
the same key is started with ``-incoming defer``, loads the file and continues; what
differs per run (files, plan, wall clock, entropy) reaches it afterwards through the
agent (``ktstr.run.boot``).

The **key** is everything the restored guest depends on: the kernel image's and the base
initramfs's content digests, the QEMU binary and its version, and the QEMU command line
itself with its per-process parts (socket paths, file descriptors, file paths) replaced by
placeholders -- so the accelerator, machine and CPU model, topology, memory size, device
set and kernel command line are all in it, and a new QEMU option can never be left out.

The **store** (``<cache>/snapshots/<key>/``) writes atomically (the state file is renamed
into place, then ``meta.json`` marks it complete), lets one process make a given snapshot
while others boot cold, and keeps the total under a size cap by evicting the least
recently used (``KTSTR_SNAPSHOT_CACHE_MB``; ``ktstr cache`` shows and clears it).
``KTSTR_SNAPSHOTS=0`` or ``--cold-boot`` turns all of it off.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.image import cache
from ktstr.vm.argv import VmConfig, qemu_argv
from ktstr.vm.machine import Vm

log = logging.getLogger(__name__)

FORMAT = "ktstr-snapshot-1"
STATE = "state"
META = "meta.json"
#: default cap on the snapshot cache (on-disk bytes; the files are sparse)
DEFAULT_CAP_MB = 8192
#: QMP bounds (unscaled: QEMU's own work, not the guest's)
SAVE_TIMEOUT_S = 120.0
LOAD_TIMEOUT_S = 120.0


def snapshots_enabled(cold_boot: bool = False) -> bool:
    """False with ``--cold-boot`` or ``KTSTR_SNAPSHOTS=0``."""
    if cold_boot:
        return False
    return os.environ.get("KTSTR_SNAPSHOTS", "1").strip().lower() not in ("0", "no", "off",
                                                                          "false")


def snapshots_dir() -> Path:
    """``$KTSTR_SNAPSHOT_DIR``, else ``<cache>/snapshots``."""
    env = os.environ.get("KTSTR_SNAPSHOT_DIR")
    return Path(env).expanduser() if env else paths.cache_root() / "snapshots"


def cache_cap_bytes() -> int:
    raw = os.environ.get("KTSTR_SNAPSHOT_CACHE_MB", "")
    try:
        mb = int(raw) if raw.strip() else DEFAULT_CAP_MB
    except ValueError:
        mb = DEFAULT_CAP_MB
    return max(0, mb) << 20


class SnapshotKey(Frozen):
    """What a restored guest depends on (see the module docstring)."""

    digest: str
    kernel_sha256: str
    base_sha256: str
    qemu: str
    qemu_version: str
    argv: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.digest[:12]


def key_argv(cfg: VmConfig) -> tuple[str, ...]:
    """The command line with its per-process parts replaced (pure)."""
    general = cfg.model_copy(update={
        "kernel": "@KERNEL", "initrd": "@INITRD", "qmp_fd": -1,
        "results_socket": "@RESULTS" if cfg.results_socket is not None else None,
        "qemu": "@QEMU"})
    return tuple(qemu_argv(general))


def snapshot_key(cfg: VmConfig, qemu_version: str, hashes: cache.HashStore) -> SnapshotKey:
    """The key of the VM ``cfg`` describes (hashes the kernel and base initrd once per
    file identity)."""
    kernel_sha, _ = hashes.digest(cfg.kernel)
    base_sha, _ = hashes.digest(cfg.initrd)
    qemu = shutil.which(cfg.qemu) or cfg.qemu
    argv = key_argv(cfg)
    text = json.dumps([FORMAT, kernel_sha, base_sha, qemu, qemu_version, list(argv)])
    return SnapshotKey(digest=hashlib.sha256(text.encode()).hexdigest(),
                       kernel_sha256=kernel_sha, base_sha256=base_sha, qemu=qemu,
                       qemu_version=qemu_version, argv=argv)


class SnapshotMeta(Frozen):
    """``meta.json`` beside a complete state file."""

    format: str = FORMAT
    key: SnapshotKey
    state_bytes: int = Field(ge=0)  # apparent size of the state file
    disk_bytes: int = Field(ge=0)
    created_at: float
    save_s: float
    boot_s: float
    label: str = ""  # e.g. "7.2.13 1n1l2c1t tcg/multi"


class SnapshotEntry(Frozen):
    """One snapshot in the store, for ``ktstr cache``."""

    digest: str
    label: str
    disk_bytes: int
    last_used: float
    created_at: float
    complete: bool


class SnapshotStore:
    """Snapshots by key under ``root`` (default ``<cache>/snapshots``)."""

    def __init__(self, root: Path | None = None, cap_bytes: int | None = None) -> None:
        self.root = root or snapshots_dir()
        self.cap_bytes = cache_cap_bytes() if cap_bytes is None else cap_bytes

    def dir_of(self, key: SnapshotKey | str) -> Path:
        return self.root / (key if isinstance(key, str) else key.digest)

    def lookup(self, key: SnapshotKey) -> Path | None:
        """The state file of a complete snapshot of ``key`` (marked used), or None."""
        d = self.dir_of(key)
        meta = _read_meta(d)
        state = d / STATE
        if meta is None or meta.key != key:
            return None
        try:
            if state.stat().st_size != meta.state_bytes:
                return None  # truncated or replaced behind our back
        except OSError:
            return None
        with contextlib.suppress(OSError):
            os.utime(d / META)  # the LRU clock
        return state

    def discard(self, key: SnapshotKey | str, why: str) -> None:
        """Remove a snapshot that failed to restore, so the next run makes a fresh one."""
        log.warning("discarding snapshot %s: %s", str(key if isinstance(key, str)
                                                      else key.short), why)
        shutil.rmtree(self.dir_of(key), ignore_errors=True)

    @contextlib.contextmanager
    def making(self, key: SnapshotKey) -> Iterator[Path | None]:
        """A temporary path for QEMU to save ``key`` to, or None when another process is
        making the same snapshot right now (then boot cold without saving). The caller
        calls ``commit`` when the save succeeded; otherwise the partial file goes."""
        d = self.dir_of(key)
        d.mkdir(parents=True, exist_ok=True)
        lock = open(d / ".lock", "a+b")  # noqa: SIM115 - held for the block
        try:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    yield None
                    return
                raise
            tmp = d / f".{STATE}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            try:
                yield tmp
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                if not (d / META).exists():  # the save failed: leave no empty entry
                    shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.close()

    def commit(self, key: SnapshotKey, tmp: Path, *, save_s: float, boot_s: float,
               label: str) -> SnapshotMeta:
        """Move a finished save into place, mark it complete, then keep under the cap."""
        d = self.dir_of(key)
        st = tmp.stat()
        (d / META).unlink(missing_ok=True)
        os.replace(tmp, d / STATE)
        meta = SnapshotMeta(key=key, state_bytes=st.st_size, disk_bytes=st.st_blocks * 512,
                            created_at=time.time(), save_s=save_s, boot_s=boot_s, label=label)
        cache.write_atomic(d / META, meta.model_dump_json(indent=1).encode())
        self.evict(keep=key.digest)
        return meta

    def entries(self) -> list[SnapshotEntry]:
        out: list[SnapshotEntry] = []
        if not self.root.is_dir():
            return out
        for d in sorted(self.root.iterdir()):
            if not d.is_dir():
                continue
            meta = _read_meta(d)
            disk = sum(f.stat().st_blocks * 512 for f in d.iterdir() if f.is_file())
            try:
                used = (d / META).stat().st_mtime if meta else d.stat().st_mtime
            except OSError:
                continue
            out.append(SnapshotEntry(
                digest=d.name, label=meta.label if meta else "(incomplete)", disk_bytes=disk,
                last_used=used, created_at=meta.created_at if meta else used,
                complete=meta is not None))
        return out

    def evict(self, keep: str = "") -> list[str]:
        """Remove the least recently used snapshots until the total is under the cap;
        never the one just made. Returns the digests removed."""
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        total = sum(e.disk_bytes for e in entries)
        gone: list[str] = []
        for e in entries:
            if total <= self.cap_bytes:
                break
            if e.digest == keep or not e.complete:
                continue
            shutil.rmtree(self.dir_of(e.digest), ignore_errors=True)
            total -= e.disk_bytes
            gone.append(e.digest)
        return gone

    def clear(self) -> int:
        """Remove every snapshot; returns how many."""
        n = 0
        for e in self.entries():
            shutil.rmtree(self.dir_of(e.digest), ignore_errors=True)
            n += 1
        return n


def _read_meta(d: Path) -> SnapshotMeta | None:
    raw = cache.read_json(d / META)
    if raw is None:
        return None
    try:
        meta = SnapshotMeta.model_validate(raw)
    except ValueError:
        return None
    return meta if meta.format == FORMAT else None


# -- QMP: save a running VM, load one ------------------------------------------------------

class SnapshotError(Exception):
    """Saving or loading a snapshot failed; the caller boots cold instead."""


MIGRATION_CAPS = [{"capability": "mapped-ram", "state": True},
                  {"capability": "events", "state": True}]  # MIGRATION status events


def _qemu_said(vm: Vm) -> str:
    """QEMU's last stderr lines, to name why a migration failed ("" if none)."""
    tail = vm.stderr_text.strip().splitlines()[-3:]
    return " | ".join(tail)


def _migration_end(vm: Vm, timeout_s: float, what: str) -> None:
    data = vm.qmp_event("MIGRATION", timeout_s,
                        lambda d: d.get("status") in ("completed", "failed", "cancelled"))
    if data is None:
        raise SnapshotError(f"{what}: no end of the migration within {timeout_s:.0f} s")
    if data.get("status") != "completed":
        said = _qemu_said(vm)
        raise SnapshotError(f"{what}: migration {data.get('status')}"
                            + (f": {said}" if said else ""))


def _cont(vm: Vm, timeout_s: float = 10.0) -> None:
    """``cont`` once the migration has let go of the VM. QEMU emits the "completed" (or
    "failed") MIGRATION event a moment before its runstate leaves finish-migrate, and no
    event when it does; until then ``cont`` answers "Migration is not finalized yet". So
    this retries that one answer, briefly and bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            vm.qmp("cont")
            return
        except Exception as exc:
            if "not finalized" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def save(vm: Vm, target: Path, timeout_s: float = SAVE_TIMEOUT_S) -> float:
    """Save the running ``vm`` to ``target`` and let it continue; returns seconds."""
    t0 = time.monotonic()
    try:
        vm.qmp("migrate-set-capabilities", capabilities=MIGRATION_CAPS)
        vm.qmp("stop")
        try:
            vm.qmp("migrate", uri=f"file:{target}")
            _migration_end(vm, timeout_s, "saving")
        finally:
            _cont(vm)  # the run that made the snapshot goes on either way
    except SnapshotError:
        raise
    except Exception as exc:  # QMP errors of any kind (qemu.qmp raises its own types)
        raise SnapshotError(f"saving: {type(exc).__name__}: {exc}") from exc
    return time.monotonic() - t0


def restore(vm: Vm, state: Path, timeout_s: float = LOAD_TIMEOUT_S) -> float:
    """Load ``state`` into ``vm`` (started with ``incoming=True``) and run it."""
    t0 = time.monotonic()
    try:
        vm.qmp("migrate-set-capabilities", capabilities=MIGRATION_CAPS)
        vm.qmp("migrate-incoming", uri=f"file:{state}")
        _migration_end(vm, timeout_s, "loading")
        _cont(vm)
    except SnapshotError:
        raise
    except Exception as exc:
        said = _qemu_said(vm)
        raise SnapshotError(f"loading: {type(exc).__name__}: {exc}"
                            + (f" ({said})" if said else "")) from exc
    return time.monotonic() - t0
