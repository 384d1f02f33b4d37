"""Build the kernel's example schedulers for 7.2 with clang-22 (uses the real cache)."""

from __future__ import annotations

import shutil

import pytest

from ktstr.schedbin.builder import Builder
from ktstr.schedbin.discover import discover_scheduler, series_artifacts

pytestmark = [
    pytest.mark.archive,
    pytest.mark.skipif(shutil.which("clang-22") is None, reason="needs clang-22 (setup.sh)"),
]


def test_build_72_has_scx_simple_and_its_object() -> None:
    build = Builder().build_series("7.2")
    assert build.series == "7.2" and build.source_version.startswith("7.2.")
    assert "clang version 22" in build.clang
    assert {"scx_simple", "scx_qmap", "scx_central", "scx_flatcg"} <= set(build.schedulers)
    simple = discover_scheduler("scx_simple", build.btf_kernel, env={"PATH": ""})
    assert simple == build.binary("scx_simple") and simple.stat().st_size > 100_000
    obj = build.bpf_object("scx_simple")
    assert obj.read_bytes()[:4] == b"\x7fELF"
    arts = series_artifacts("7.2.13+deb14-amd64")
    assert arts.veristat.is_file() and arts.bpftool.is_file()
    assert obj in arts.objects()
