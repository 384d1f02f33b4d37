"""Snapshot keys and the snapshot store, without QEMU: what changes a key, atomic
completion, the one-maker lock, LRU eviction under the cap, and the opt-out."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ktstr.declare.topology import Topology
from ktstr.image.cache import HashStore
from ktstr.vm import snapshot
from ktstr.vm.argv import TcgThreading, VmConfig
from ktstr.vm.snapshot import SnapshotStore, key_argv, snapshot_key, snapshots_enabled

T1121 = Topology(1, 1, 2, 1)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"kernel-1")
    base = tmp_path / "base.cpio"
    base.write_bytes(b"base-1")
    return kernel, base


def _cfg(kernel: Path, base: Path, **kw: object) -> VmConfig:
    fields: dict[str, object] = {"kernel": str(kernel), "initrd": str(base),
                                 "cmdline": ("console=ttyS0,115200", "rdinit=/init"),
                                 "topology": T1121, "qmp_fd": 7,
                                 "results_socket": "/tmp/run-1/r.sock"}
    fields.update(kw)
    return VmConfig.model_validate(fields)


def _key(cfg: VmConfig, tmp_path: Path, version: str = "10.0.2") -> snapshot.SnapshotKey:
    return snapshot_key(cfg, version, HashStore(tmp_path / "hashes"))


def test_per_process_parts_are_not_in_the_key(files: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    kernel, base = files
    a = _cfg(kernel, base)
    b = _cfg(kernel, base, qmp_fd=9, results_socket="/tmp/run-2/r.sock")
    assert _key(a, tmp_path) == _key(b, tmp_path)
    assert all("/tmp/run-1" not in arg for arg in key_argv(a))


@pytest.mark.parametrize("change", [
    {"topology": Topology(1, 2, 2, 1)},
    {"memory_mb": 2048},
    {"cmdline": ("console=ttyS0,115200", "rdinit=/init", "sched_ext.slice_bypass_us=1")},
    {"tcg_threading": TcgThreading.SINGLE},
])
def test_every_vm_input_changes_the_key(files: tuple[Path, Path], tmp_path: Path,
                                        change: dict[str, object]) -> None:
    kernel, base = files
    assert _key(_cfg(kernel, base), tmp_path) != _key(_cfg(kernel, base, **change), tmp_path)


def test_kernel_base_image_and_qemu_version_change_the_key(files: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    kernel, base = files
    cfg = _cfg(kernel, base)
    first = _key(cfg, tmp_path)
    assert _key(cfg, tmp_path, version="10.1.0") != first
    base.write_bytes(b"base-2")
    second = _key(cfg, tmp_path)
    assert second != first and second.base_sha256 != first.base_sha256
    kernel.write_bytes(b"kernel-2, a rebuilt kernel")
    assert _key(cfg, tmp_path).kernel_sha256 != second.kernel_sha256


def _make(store: SnapshotStore, key: snapshot.SnapshotKey, size: int) -> None:
    with store.making(key) as tmp:
        assert tmp is not None
        with open(tmp, "wb") as fh:
            fh.write(os.urandom(size))
        store.commit(key, tmp, save_s=0.9, boot_s=5.0, label="test")


def test_a_snapshot_is_found_only_once_complete(files: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    kernel, base = files
    key = _key(_cfg(kernel, base), tmp_path)
    store = SnapshotStore(tmp_path / "snaps", cap_bytes=1 << 30)
    assert store.lookup(key) is None
    with store.making(key) as tmp:
        assert tmp is not None
        tmp.write_bytes(b"partial")
        assert store.lookup(key) is None  # no meta.json yet: not complete
    assert not list((tmp_path / "snaps" / key.digest).glob("*.tmp"))  # the partial went
    _make(store, key, 4096)
    state = store.lookup(key)
    assert state is not None and state.stat().st_size == 4096


def test_a_truncated_state_file_is_not_used(files: tuple[Path, Path], tmp_path: Path) -> None:
    kernel, base = files
    key = _key(_cfg(kernel, base), tmp_path)
    store = SnapshotStore(tmp_path / "snaps", cap_bytes=1 << 30)
    _make(store, key, 4096)
    state = store.lookup(key)
    assert state is not None
    with open(state, "r+b") as fh:
        fh.truncate(100)
    assert store.lookup(key) is None


def test_one_process_makes_a_snapshot_the_other_boots_cold(files: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    kernel, base = files
    key = _key(_cfg(kernel, base), tmp_path)
    store = SnapshotStore(tmp_path / "snaps", cap_bytes=1 << 30)
    other = SnapshotStore(tmp_path / "snaps", cap_bytes=1 << 30)
    with store.making(key) as mine:
        assert mine is not None
        with other.making(key) as theirs:  # flock: a second open file description
            assert theirs is None


def test_least_recently_used_snapshots_go_first_under_the_cap(files: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    kernel, base = files
    store = SnapshotStore(tmp_path / "snaps", cap_bytes=3 * 65536)
    keys = [_key(_cfg(kernel, base, memory_mb=2048 + 256 * i), tmp_path) for i in range(3)]
    assert len({k.digest for k in keys}) == 3
    _make(store, keys[0], 65536)
    _make(store, keys[1], 65536)
    old = time.time() - 100
    os.utime(store.dir_of(keys[0]) / snapshot.META, (old, old))
    os.utime(store.dir_of(keys[1]) / snapshot.META, (old + 50, old + 50))
    assert store.lookup(keys[0]) is not None  # used now: the most recent
    _make(store, keys[2], 65536)  # over the cap: keys[1] is the least recently used
    assert store.lookup(keys[1]) is None
    assert store.lookup(keys[0]) is not None and store.lookup(keys[2]) is not None
    assert store.clear() == 2 and store.entries() == []


def test_snapshots_are_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KTSTR_SNAPSHOTS", raising=False)
    assert snapshots_enabled()
    assert not snapshots_enabled(cold_boot=True)
    monkeypatch.setenv("KTSTR_SNAPSHOTS", "0")
    assert not snapshots_enabled()


def test_gauntlet_runs_variants_in_parallel_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from ktstr.cli.testcmd import gauntlet_jobs

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert gauntlet_jobs(None, 4) == 2  # one per host CPU
    assert gauntlet_jobs(None, 1) == 1  # never more than the variants
    assert gauntlet_jobs(3, 2) == 2 and gauntlet_jobs(1, 8) == 1
