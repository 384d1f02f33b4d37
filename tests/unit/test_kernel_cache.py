"""The kernel cache: fetch from fake packages, reuse, corruption, atomicity, locks."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from ktstr.errors import InfraError
from ktstr.kernel.cache import EntryState, KernelCache, KernelSource
from ktstr.kernel.clean import plan_clean, remove_entries, select_for_clean
from ktstr.kernel.config import ConfigFacts, parse_config
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.locking import file_lock, is_locked
from ktstr.testing.kernel import FakeArchive, image_kernel_debs, split_kernel_debs

REL72 = "7.2.13+deb14-amd64"


def _archive(tmp_path: Path) -> FakeArchive:
    archive = FakeArchive()
    archive.add("7.2.13-1", "sid", split_kernel_debs(tmp_path, REL72, "7.2.13-1"))
    archive.add("6.12.107-1", "trixie",
                image_kernel_debs(tmp_path, "6.12.107+deb13-amd64", "6.12.107-1"))
    return archive


@pytest.fixture
def archive(tmp_path: Path) -> FakeArchive:
    return _archive(tmp_path / "debs")


@pytest.fixture
def cache(tmp_path: Path) -> KernelCache:
    return KernelCache(tmp_path / "kernels")


def test_split_layout_entry(cache: KernelCache, archive: FakeArchive) -> None:
    (k,) = Fetcher(cache, archive).fetch("7.2")
    assert (k.key, k.version, k.release, k.debian_version, k.suite) == (
        REL72, "7.2.13", REL72, "7.2.13-1", "sid")
    assert k.source is KernelSource.DEBIAN and k.flavour == "amd64"
    assert k.sched_ext and k.config_facts.btf and k.config_facts.builtin("BPF_SYSCALL")
    assert k.image_path.read_bytes()[0x202:0x206] == b"HdrS"
    assert k.config_path is not None and k.config_path.name == "config"
    assert k.modules_dir is not None
    assert (k.modules_dir / "kernel/fs/9p/9p.ko.xz").is_file()
    assert (k.modules_dir / "modules.builtin").is_file()
    assert not (k.entry_dir / "_download").exists()
    meta = json.loads((k.entry_dir / "metadata.json").read_text())
    assert meta["sched_ext"] is True and "entry_dir" not in meta
    assert meta["config_facts"]["options"]["SCHED_CLASS_EXT"] == "y"
    assert k.size_bytes > 0


def test_image_layout_without_sched_ext(cache: KernelCache, archive: FakeArchive) -> None:
    (k,) = Fetcher(cache, archive).fetch("6.12")
    assert k.key == "6.12.107+deb13-amd64" and not k.sched_ext
    assert k.modules_dir is not None
    assert (k.modules_dir / "kernel/net/9p/9pnet.ko.xz").is_file()
    assert k.system_map_path is not None and k.system_map_path.is_file()


def test_second_fetch_reuses_the_entry(cache: KernelCache, archive: FakeArchive) -> None:
    first = Fetcher(cache, archive).fetch("7.2.13")[0]
    second = Fetcher(cache, archive).fetch("7.2")[0]
    assert first.entry_dir == second.entry_dir
    assert len(archive.downloads) == 3  # binary, base, modules: once


def test_corrupt_entries_are_reported_and_never_used(cache: KernelCache,
                                                     archive: FakeArchive) -> None:
    k = Fetcher(cache, archive).fetch("7.2")[0]
    k.image_path.write_bytes(b"tampered")
    status = cache.status(k.key)
    assert status is not None and status.state is EntryState.CORRUPT
    assert any("sha256 mismatch" in p for p in status.problems)
    assert cache.get(k.key) is None and cache.entries() == []
    # the next fetch replaces it
    again = Fetcher(cache, archive).fetch("7.2")[0]
    assert cache.status(again.key).state is EntryState.OK  # type: ignore[union-attr]


@pytest.mark.parametrize("damage", ["metadata", "config", "modules"])
def test_other_damage_is_detected(cache: KernelCache, archive: FakeArchive,
                                  damage: str) -> None:
    import shutil

    k = Fetcher(cache, archive).fetch("7.2")[0]
    if damage == "metadata":
        (k.entry_dir / "metadata.json").write_text("{not json")
    elif damage == "config":
        (k.entry_dir / "config").unlink()
    else:
        shutil.rmtree(k.entry_dir / "modules")
    (status,) = cache.scan()
    assert status.state is EntryState.CORRUPT and status.problems
    assert select_for_clean(cache.scan(), spec=None, keep=None, corrupt_only=True) == [status]


def test_interrupted_download_leaves_nothing(cache: KernelCache, tmp_path: Path) -> None:
    broken = _archive(tmp_path / "debs2")
    broken.fail_download = True
    with pytest.raises(InfraError, match="apt-get download"):
        Fetcher(cache, broken).fetch("7.2")
    assert cache.scan() == []
    assert [p.name for p in cache.root.iterdir() if not p.name.startswith(".locks")] == []


def _fetch_in_child(root: str, debs: str, queue: multiprocessing.Queue[object]) -> None:
    archive = _archive(Path(debs))
    k = Fetcher(KernelCache(Path(root)), archive).fetch("7.2")[0]
    queue.put((str(k.entry_dir), len(archive.downloads)))


def test_parallel_fetches_install_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    root = tmp_path / "kernels"
    procs = [ctx.Process(target=_fetch_in_child, args=(str(root), str(tmp_path / f"d{i}"), queue))
             for i in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({r[0] for r in results}) == 1  # type: ignore[index]
    assert sum(r[1] for r in results) == 3  # type: ignore[index,misc]
    assert [s.state for s in KernelCache(root).scan()] == [EntryState.OK]


def test_lock_excludes_and_is_released(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with file_lock(lock):
        assert is_locked_elsewhere(lock)
        with pytest.raises(InfraError, match="timed out"):
            _child_lock(lock)
    assert not is_locked_elsewhere(lock)


def is_locked_elsewhere(lock: Path) -> bool:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bool] = ctx.Queue()
    p = ctx.Process(target=lambda: queue.put(is_locked(lock)))
    p.start()
    result = queue.get(timeout=30)
    p.join(timeout=30)
    return result


def _child_lock(lock: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()

    def body() -> None:
        try:
            with file_lock(lock, timeout=0.2):
                queue.put("acquired")
        except InfraError as exc:
            queue.put(str(exc))

    p = ctx.Process(target=body)
    p.start()
    msg = queue.get(timeout=30)
    p.join(timeout=30)
    if msg != "acquired":
        raise InfraError(msg)


def test_clean_keep_and_stale_staging(cache: KernelCache, archive: FakeArchive) -> None:
    Fetcher(cache, archive).fetch("6.12")
    Fetcher(cache, archive).fetch("7.2")
    stale = cache.root / ".tmp-7.3.4+deb13-amd64-abc123"
    stale.mkdir()
    plan = plan_clean(spec=None, keep=1, corrupt_only=False, cache=cache)
    assert [p.name for p in plan] == ["6.12.107+deb13-amd64", stale.name]
    remove_entries(plan, cache)
    assert [k.key for k in cache.entries()] == [REL72]
    assert not stale.exists()
    assert plan_clean(spec="7.2", keep=None, corrupt_only=False, cache=cache) == [
        cache.path_for(REL72)]


def test_config_parsing() -> None:
    text = 'CONFIG_SCHED_CLASS_EXT=y\n# CONFIG_SCHED_CORE is not set\nCONFIG_HZ=250\n' \
           'CONFIG_LOCALVERSION="-x"\nCONFIG_NET_9P_VIRTIO=m\n'
    assert parse_config(text)["LOCALVERSION"] == "-x"
    facts = ConfigFacts.from_text(text)
    assert facts.sched_ext and not facts.builtin("SCHED_CORE") and not facts.btf
    assert facts.available("CONFIG_NET_9P_VIRTIO") and not facts.builtin("NET_9P_VIRTIO")
    assert facts.value("HZ") == "250"


def test_entries_dir_ignores_hidden(cache: KernelCache) -> None:
    os.makedirs(cache.root / ".locks")
    assert cache.scan() == []


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths ``ktstr.kernel.cache`` hashes from now on, in order."""
    from ktstr.kernel import cache as cache_mod

    calls: list[Path] = []
    real = cache_mod.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(cache_mod, "sha256_file", counting)
    return calls


def test_an_image_digest_is_computed_once_until_the_file_changes(
        tmp_path: Path, hashed: list[Path]) -> None:
    from ktstr.kernel import cache as cache_mod

    calls = hashed
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"one")
    first = cache_mod.image_digest(image)
    assert cache_mod.image_digest(image) == first and len(calls) == 1
    image.write_bytes(b"two, longer")
    assert cache_mod.image_digest(image) != first and len(calls) == 2


def test_a_later_process_takes_the_digest_from_the_memo_until_the_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashed: list[Path]) -> None:
    from ktstr.kernel import cache as cache_mod

    calls = hashed

    def real(path: Path) -> str:  # the expected digest, not counted
        return hashlib.sha256(path.read_bytes()).hexdigest()
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"one")
    first = cache_mod.image_digest(image)
    assert len(calls) == 1 and (tmp_path / ".vmlinuz.sha256.json").is_file()
    monkeypatch.setattr(cache_mod, "_DIGESTS", {})  # as a new process
    assert cache_mod.image_digest(image) == first and len(calls) == 1
    image.write_bytes(b"two, longer")
    monkeypatch.setattr(cache_mod, "_DIGESTS", {})
    assert cache_mod.image_digest(image) == real(image) and len(calls) == 2
    (tmp_path / ".vmlinuz.sha256.json").write_text("not json")
    monkeypatch.setattr(cache_mod, "_DIGESTS", {})
    assert cache_mod.image_digest(image) == real(image) and len(calls) == 3


def test_a_memo_that_lies_about_another_file_is_not_believed(tmp_path: Path) -> None:
    import json

    from ktstr.kernel import cache as cache_mod

    image = tmp_path / "vmlinuz"
    image.write_bytes(b"kernel")
    st = image.stat()
    (tmp_path / ".vmlinuz.sha256.json").write_text(json.dumps(
        {"identity": [st.st_dev, st.st_ino + 1, st.st_size, st.st_mtime_ns], "sha256": "0" * 64}))
    assert cache_mod.image_digest(image) == cache_mod.sha256_file(image)
