"""Scheduler builds in the cache, discovery order, and the build command lines (pure)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from ktstr.errors import UserError
from ktstr.kernel.archive import PackageVersion
from ktstr.schedbin.build import Toolchain, make_argv, veristat_argv
from ktstr.schedbin.cache import SchedulerBuild, SchedulerCache
from ktstr.schedbin.discover import discover_scheduler, series_artifacts, series_of
from ktstr.schedbin.source import pick_source, source_series, tar_extract_argv


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def _install(cache: SchedulerCache, version: str, names: list[str]) -> SchedulerBuild:
    def build(tmp: Path) -> SchedulerBuild:
        for n in [*names, "bpftool", "veristat"]:
            _exe(tmp / "bin" / n)
        for n in names:
            (tmp / "obj").mkdir(exist_ok=True)
            (tmp / "obj" / f"{n}.bpf.o").write_bytes(b"\x7fELF")
        return SchedulerBuild(
            source_version=version, series=series_of(version), debian_version=f"{version}-1",
            source_package=f"linux-source-{series_of(version)}", btf_kernel="k",
            clang="clang 22", schedulers=names, tools=["bpftool", "veristat"],
            built_at=dt.datetime.now(dt.UTC), entry_dir=tmp)
    return cache.ensure(version, build)


@pytest.fixture
def cache(tmp_path: Path) -> SchedulerCache:
    c = SchedulerCache(tmp_path / "schedulers")
    _install(c, "7.2.13", ["scx_simple", "scx_qmap"])
    _install(c, "7.3.4", ["scx_simple"])
    return c


@pytest.mark.parametrize(("text", "want"), [
    ("7.2.13+deb14-amd64", "7.2"), ("7.2.13", "7.2"), ("7.3-rc7", "7.3"),
    ("7.3~rc7-1~exp1", "7.3"), ("6.1.0-56-amd64", "6.1"),
])
def test_series_of(text: str, want: str) -> None:
    assert series_of(text) == want


def test_cache_lookup(cache: SchedulerCache) -> None:
    assert [b.source_version for b in cache.builds()] == ["7.2.13", "7.3.4"]
    b72 = cache.for_series("7.2")
    assert b72 is not None and b72.bpf_object("scx_qmap").is_file()
    assert b72.objects() == [b72.obj_dir / "scx_simple.bpf.o", b72.obj_dir / "scx_qmap.bpf.o"]
    assert b72.veristat.is_file() and b72.bpftool.is_file()
    assert cache.for_series("6.12") is None


def test_kernel_series_picks_the_build(cache: SchedulerCache) -> None:
    env = {"PATH": ""}
    got = discover_scheduler("scx_qmap", "7.2.13+deb14-amd64", cache=cache, env=env)
    assert got == cache.path_for("7.2.13") / "bin" / "scx_qmap"
    assert discover_scheduler("scx_simple", "7.3.4", cache=cache, env=env).parent.parent.name \
        == "7.3.4"
    # no kernel given: the newest built series
    assert "7.3.4" in str(discover_scheduler("scx_simple", None, cache=cache, env=env))


def test_env_override_file_and_dir(cache: SchedulerCache, tmp_path: Path) -> None:
    mine = _exe(tmp_path / "mine" / "scx_simple")
    assert discover_scheduler("scx_simple", "7.2", cache=cache,
                              env={"KTSTR_SCHEDULER": str(mine)}) == mine
    assert discover_scheduler("scx_simple", "7.2", cache=cache,
                              env={"KTSTR_SCHEDULER": str(mine.parent)}) == mine


def test_path_is_last(cache: SchedulerCache, tmp_path: Path) -> None:
    onpath = _exe(tmp_path / "bin" / "scx_custom")
    got = discover_scheduler("scx_custom", "7.2", cache=cache,
                             env={"PATH": str(onpath.parent)})
    assert got == onpath


def test_failure_lists_every_place(cache: SchedulerCache, tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        discover_scheduler("scx_qmap", "7.3.4", cache=cache,
                           env={"KTSTR_SCHEDULER": str(tmp_path / "nope"), "PATH": "/x"})
    msg = str(err.value)
    assert "$KTSTR_SCHEDULER=" in msg
    assert "built: scx_simple" in msg
    assert "$PATH (/x)" in msg
    assert "ktstr schedulers build --series 7.3" in msg


def test_no_build_for_series(tmp_path: Path) -> None:
    empty = SchedulerCache(tmp_path / "none")
    with pytest.raises(UserError, match=r"ktstr schedulers build --series 6\.12"):
        discover_scheduler("scx_simple", "6.12.107", cache=empty, env={"PATH": ""})
    with pytest.raises(UserError, match=r"ktstr schedulers build --series 7\.2"):
        series_artifacts("7.2.13", cache=empty)


def test_missing_files_make_a_build_invalid(cache: SchedulerCache) -> None:
    b = cache.get("7.3.4")
    assert b is not None
    os.unlink(b.bpf_object("scx_simple"))
    assert cache.get("7.3.4") is None
    assert [x.source_version for x in cache.builds()] == ["7.2.13"]


def test_pick_source() -> None:
    versions = [
        PackageVersion(package="linux-source-7.3", version="7.3~rc7-1~exp1",
                       suite="experimental"),
        PackageVersion(package="linux-source-7.3", version="7.3.4-1~bpo13+1",
                       suite="trixie-backports"),
    ]
    got = pick_source("7.3", versions)
    assert (got.version, got.debian_version, got.package) == ("7.3.4", "7.3.4-1~bpo13+1",
                                                              "linux-source-7.3")
    with pytest.raises(UserError, match=r"series available: 7\.2, 7\.3"):
        pick_source("7.9", versions, ["7.2", "7.3"])
    assert source_series(["linux-source", "linux-source-7.3", "linux-source-6.12",
                          "linux-source-7.2"]) == ["6.12", "7.2", "7.3"]


def test_command_lines() -> None:
    src, out = Path("/s"), Path("/o")
    assert make_argv(src, out, Path("/v"), Toolchain(jobs=3)) == [
        "make", "-C", "/s/tools/sched_ext", "-j3", "O=/o", "CLANG=clang-22",
        "LLVM_STRIP=llvm-strip-22", "LLVM_CONFIG=llvm-config-22", "SKIP_LLVM=1",
        "SKIP_LIBBFD=1", "SKIP_CRYPTO=1", "VMLINUX_BTF=/v"]
    argv = veristat_argv(src, out, Path("/d/veristat"))
    assert argv[:2] == ["gcc", "-O2"]
    assert "/s/tools/testing/selftests/bpf/veristat.c" in argv
    assert "/o/build/obj/libbpf/libbpf.a" in argv and argv[-4:] == ["-lelf", "-lz", "-lm",
                                                                      "-lpthread"]
    assert tar_extract_argv(Path("/t.tar.xz"), Path("/d"), "linux-source-7.2") == [
        "tar", "-xf", "/t.tar.xz", "-C", "/d", "linux-source-7.2/tools",
        "linux-source-7.2/scripts", "linux-source-7.2/include",
        "linux-source-7.2/arch/x86/include", "linux-source-7.2/kernel/bpf"]
