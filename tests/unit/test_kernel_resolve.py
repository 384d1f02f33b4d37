"""Kernel package names, archive matching, and the resolution order of resolve_kernel."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from ktstr.errors import UserError
from ktstr.kernel.archive import PackageVersion
from ktstr.kernel.cache import CachedKernel, KernelCache, KernelSource
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.id import KernelId
from ktstr.kernel.match import match_archive, nearest_versions
from ktstr.kernel.packages import (
    Flavour,
    PackageLayout,
    candidate_packages,
    kernels_from_versions,
    parse_package_name,
)
from ktstr.kernel.resolve import naming_spec, resolve_kernel
from ktstr.testing.kernel import FakeArchive, image_kernel_debs, split_kernel_debs

INDEX = [
    PackageVersion(package="linux-binary-7.2.9+deb13-amd64", version="7.2.9-1~bpo13+1",
                   suite="trixie-backports"),
    PackageVersion(package="linux-binary-7.2.13+deb14-amd64", version="7.2.13-1", suite="sid"),
    PackageVersion(package="linux-binary-7.2.13+deb14-cloud-amd64", version="7.2.13-1",
                   suite="sid"),
    PackageVersion(package="linux-binary-7.3-amd64", version="7.3~rc7-1~exp1",
                   suite="experimental"),
    PackageVersion(package="linux-binary-7.3.4+deb13-amd64", version="7.3.4-1~bpo13+1",
                   suite="trixie-backports"),
    PackageVersion(package="linux-image-6.12.107+deb12-amd64-unsigned",
                   version="6.12.107-1~deb12u1", suite="bookworm-security"),
    PackageVersion(package="linux-image-6.12.107+deb13-amd64-unsigned", version="6.12.107-1",
                   suite="trixie"),
    PackageVersion(package="linux-image-6.1.0-56-amd64-unsigned", version="6.1.192-2",
                   suite="bookworm-security"),
]
AVAILABLE = kernels_from_versions(INDEX, Flavour.GENERIC)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KTSTR_KERNEL", raising=False)


@pytest.mark.parametrize(("name", "want"), [
    ("linux-binary-7.2.13+deb14-amd64", ("7.2.13+deb14-amd64", Flavour.GENERIC,
                                         PackageLayout.SPLIT)),
    ("linux-binary-7.3-rt-amd64", ("7.3-rt-amd64", Flavour.RT, PackageLayout.SPLIT)),
    ("linux-binary-7.3-cloud-amd64", ("7.3-cloud-amd64", Flavour.CLOUD, PackageLayout.SPLIT)),
    ("linux-image-6.1.0-56-amd64-unsigned", ("6.1.0-56-amd64", Flavour.GENERIC,
                                             PackageLayout.IMAGE)),
    ("linux-binary-unsigned-7.2.13+deb14-amd64", None),
    ("linux-image-6.1.0-56-amd64-unsigned-dbg", None),
    ("linux-image-amd64", None),
])
def test_parse_package_name(name: str, want: object) -> None:
    assert parse_package_name(name) == want


def test_candidates_filter_flavour() -> None:
    names = [v.package for v in INDEX]
    assert "linux-binary-7.2.13+deb14-cloud-amd64" not in candidate_packages(names,
                                                                             Flavour.GENERIC)
    assert candidate_packages(names, Flavour.CLOUD) == ["linux-binary-7.2.13+deb14-cloud-amd64"]


def test_available_is_deduplicated_and_ordered() -> None:
    assert [k.version for k in AVAILABLE] == ["6.1.192", "6.12.107", "7.2.9", "7.2.13",
                                              "7.3-rc7", "7.3.4"]
    k612 = next(k for k in AVAILABLE if k.version == "6.12.107")
    assert k612.debian_version == "6.12.107-1" and k612.release == "6.12.107+deb13-amd64"
    k72 = next(k for k in AVAILABLE if k.version == "7.2.13")
    assert k72.package_names == ["linux-binary-7.2.13+deb14-amd64",
                                 "linux-base-7.2.13+deb14-amd64",
                                 "linux-modules-7.2.13+deb14-amd64"]


@pytest.mark.parametrize(("spec", "want"), [
    ("7.2", ["7.2.13"]),
    ("7.3", ["7.3.4"]),
    ("7.2.9", ["7.2.9"]),
    ("7.3-rc7", ["7.3-rc7"]),
    ("7.3~rc7", ["7.3-rc7"]),
    ("6.1", ["6.1.192"]),
    ("7.2..=7.3", ["7.2.9", "7.2.13", "7.3-rc7", "7.3.4"]),
    ("6.12..7.2.9", ["6.12.107", "7.2.9"]),
])
def test_match_archive(spec: str, want: list[str]) -> None:
    assert [k.version for k in match_archive(KernelId.parse(spec), AVAILABLE)] == want


def test_unknown_version_lists_nearest() -> None:
    with pytest.raises(UserError) as err:
        match_archive(KernelId.parse("7.2.10"), AVAILABLE)
    msg = str(err.value)
    assert "nearest available: 6.1.192, 6.12.107, 7.2.9, 7.2.13, 7.3-rc7, 7.3.4" in msg
    assert "ktstr kernel list --available" in msg


def test_nearest_versions_window() -> None:
    assert nearest_versions("9.0", ["7.1", "7.2", "8.0"], count=2) == ["7.2", "8.0"]


def _fetcher(tmp_path: Path) -> tuple[Fetcher, FakeArchive]:
    archive = FakeArchive()
    archive.add("7.2.13-1", "sid", split_kernel_debs(tmp_path, "7.2.13+deb14-amd64", "7.2.13-1"))
    archive.add("7.3.4-1", "trixie-backports",
                split_kernel_debs(tmp_path, "7.3.4+deb13-amd64", "7.3.4-1"))
    archive.add("6.12.107-1", "trixie",
                image_kernel_debs(tmp_path, "6.12.107+deb13-amd64", "6.12.107-1"))
    return Fetcher(KernelCache(tmp_path / "kernels"), archive), archive


def test_no_kernel_anywhere_prints_the_fetch_command(tmp_path: Path) -> None:
    fetcher, _ = _fetcher(tmp_path)
    with pytest.raises(UserError, match=r"ktstr kernel fetch 7\.2\n"):
        resolve_kernel(None, fetcher=fetcher)


def test_eevdf_only_cache_is_not_a_default(tmp_path: Path) -> None:
    fetcher, _ = _fetcher(tmp_path)
    fetcher.fetch("6.12")
    with pytest.raises(UserError, match="none cached with sched_ext"):
        resolve_kernel(None, fetcher=fetcher)


def test_default_is_newest_cached_sched_ext(tmp_path: Path) -> None:
    fetcher, _ = _fetcher(tmp_path)
    fetcher.fetch("7.2..=7.3")
    fetcher.fetch("6.12")
    assert resolve_kernel(None, fetcher=fetcher).version == "7.3.4"


def test_env_beats_default_and_explicit_beats_env(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fetcher, _ = _fetcher(tmp_path)
    fetcher.fetch("7.2..=7.3")
    monkeypatch.setenv("KTSTR_KERNEL", "7.2")
    assert resolve_kernel(None, fetcher=fetcher).version == "7.2.13"
    assert resolve_kernel("6.12", fetcher=fetcher).version == "6.12.107"


def test_cached_version_needs_no_archive(tmp_path: Path) -> None:
    fetcher, archive = _fetcher(tmp_path)
    fetcher.fetch("7.2.13")
    offline = Fetcher(fetcher.cache, FakeArchive(fail_download=True))
    assert resolve_kernel("7.2", fetcher=offline).key == "7.2.13+deb14-amd64"
    assert resolve_kernel("7.2.13+deb14-amd64", fetcher=offline).version == "7.2.13"
    assert archive.downloads.count("linux-binary-7.2.13+deb14-amd64=7.2.13-1") == 1


def test_range_is_not_one_kernel(tmp_path: Path) -> None:
    fetcher, _ = _fetcher(tmp_path)
    with pytest.raises(UserError, match="names 2 kernels"):
        resolve_kernel("7.2..=7.3", fetcher=fetcher)


def test_git_spec_is_not_supported(tmp_path: Path) -> None:
    fetcher, _ = _fetcher(tmp_path)
    with pytest.raises(UserError, match=r"build the tree .* and pass its path"):
        fetcher.fetch("git+https://example.invalid/linux.git#v7.2")


def test_unknown_cache_key_lists_cached(tmp_path: Path) -> None:
    fetcher, _ = _fetcher(tmp_path)
    fetcher.fetch("7.2")
    with pytest.raises(UserError, match=r"cached keys: 7\.2\.13\+deb14-amd64"):
        fetcher.fetch("mykernel")


def _entry(cache: KernelCache, key: str, version: str, source: KernelSource) -> CachedKernel:
    entry = cache.root / key
    entry.mkdir(parents=True)
    (entry / "vmlinuz").write_bytes(b"k")
    kernel = CachedKernel(key=key, version=version, source=source, image="vmlinuz",
                          image_sha256=hashlib.sha256(b"k").hexdigest(), sched_ext=True,
                          fetched_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                          entry_dir=entry)
    (entry / "metadata.json").write_text(kernel.model_dump_json())
    return kernel


def test_a_reproducer_names_a_built_kernel_by_its_cache_key(tmp_path: Path) -> None:
    """A kernel built from a tree has the version of a Debian one: ``--kernel 7.2.13``
    would rerun on the Debian kernel, so the reproducer must name the built one's key."""
    cache = KernelCache(tmp_path)
    debian = _entry(cache, "7.2.13+deb14-amd64", "7.2.13", KernelSource.DEBIAN)
    built = _entry(cache, "7.2.13+build-4261b8864c", "7.2.13", KernelSource.TREE)
    rerun = {naming_spec(k, "7.2", cache): k.key for k in (debian, built)}
    for spec, key in rerun.items():  # each spec resolves back to the kernel it names
        assert resolve_kernel(spec, fetcher=Fetcher(cache)).key == key
    assert naming_spec(debian, "7.2", cache) == "7.2.13"
    outside = built.model_copy(update={"in_cache": False})
    assert naming_spec(outside, "/src/linux/arch/x86/boot/bzImage", cache) == \
        "/src/linux/arch/x86/boot/bzImage"
