"""``Builder.build_series`` end to end with a fake archive and a fake source package whose
``tools/sched_ext/Makefile`` stands in for the real build (needs make, gcc, ar, libelf)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ktstr.errors import InfraError, UserError
from ktstr.kernel.cache import KernelCache
from ktstr.schedbin.build import Toolchain
from ktstr.schedbin.builder import Builder
from ktstr.schedbin.cache import BUILD_RECIPE, SchedulerCache
from ktstr.schedbin.discover import discover_scheduler
from ktstr.schedbin.source import SourceTrees
from ktstr.testing.kernel import FakeArchive, build_deb, split_kernel_debs

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("make", "gcc", "ar", "dpkg-deb", "readelf",
                                          f"llvm-strip-{Toolchain().llvm}")),
    reason="needs make, gcc, ar, dpkg-deb, readelf and llvm-strip",
)

MAKEFILE = """\
all:
\ttest -s $(VMLINUX_BTF)
\tmkdir -p $(O)/build/bin $(O)/build/sbin $(O)/build/obj/sched_ext $(O)/build/obj/libbpf \
$(O)/build/include
\tprintf 'int main(void) { return 0; }\\n' > $(O)/simple.c
\tgcc -g -o $(O)/build/bin/scx_simple $(O)/simple.c
\techo bpf > $(O)/build/obj/sched_ext/scx_simple.bpf.linked3.o
\tcp $(O)/build/bin/scx_simple $(O)/build/sbin/bpftool
\tar rcs $(O)/build/obj/libbpf/libbpf.a
"""
FAILING_MAKEFILE = "all:\n\t@echo 'error: BPF program is too large' >&2; exit 1\n"


class FakeToolchain(Toolchain):
    def missing(self) -> list[str]:
        return []


def _source_deb(workdir: Path, series: str, version: str, makefile: str) -> Path:
    top = f"linux-source-{series}"
    files = {
        f"{top}/tools/sched_ext/Makefile": makefile.encode(),
        f"{top}/scripts/extract-vmlinux": b"#!/bin/sh\ncat \"$1\"\n",
        f"{top}/tools/testing/selftests/bpf/veristat.c": b"int main(void) { return 0; }\n",
        f"{top}/tools/include/uapi/.keep": b"",
        f"{top}/include/linux/x.h": b"",
        f"{top}/arch/x86/include/asm/y.h": b"",
        f"{top}/kernel/bpf/disasm.h": b"",
        f"{top}/Documentation/not-extracted.txt": b"",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return build_deb(workdir, top, version, {f"usr/src/{top}.tar.xz": buf.getvalue()})


def _builder(tmp_path: Path, makefile: str = MAKEFILE) -> tuple[Builder, FakeArchive]:
    debs = tmp_path / "debs"
    debs.mkdir()
    archive = FakeArchive()
    archive.add("9.9.1-1", "sid", split_kernel_debs(debs, "9.9.1+deb14-amd64", "9.9.1-1"))
    archive.add("9.9.1-1", "sid", {"linux-source-9.9": _source_deb(debs, "9.9", "9.9.1-1",
                                                                   makefile)})
    builder = Builder(archive=archive, kernels=KernelCache(tmp_path / "kernels"),
                      cache=SchedulerCache(tmp_path / "schedulers"),
                      trees=SourceTrees(tmp_path / "sources"), toolchain=FakeToolchain())
    return builder, archive


def test_build_caches_binaries_objects_and_tools(tmp_path: Path) -> None:
    builder, archive = _builder(tmp_path)
    build = builder.build_series("9.9")
    assert (build.source_version, build.series, build.btf_kernel) == (
        "9.9.1", "9.9", "9.9.1+deb14-amd64")
    assert build.schedulers == ["scx_simple"]
    assert build.binary("scx_simple").is_file() and build.bpf_object("scx_simple").is_file()
    assert build.veristat.is_file() and build.bpftool.is_file()
    assert (build.entry_dir / "build.log").is_file()
    # the programs lose their DWARF (it crossed the guest channel before every run)
    sections = subprocess.run(["readelf", "-S", str(build.binary("scx_simple"))],
                              capture_output=True, text=True, check=True).stdout
    assert ".symtab" in sections and ".debug_info" not in sections
    assert not (build.entry_dir / "_work").exists()
    tree = tmp_path / "sources" / "9.9.1" / "linux-source-9.9"
    assert (tree / "kernel/bpf/disasm.h").is_file()
    assert not (tree / "Documentation").exists()
    # a second call reuses everything; discovery finds the binary for a 9.9 kernel
    assert builder.build_series("9.9").entry_dir == build.entry_dir
    assert archive.downloads.count("linux-source-9.9=9.9.1-1") == 1
    found = discover_scheduler("scx_simple", "9.9.1+deb14-amd64", cache=builder.cache,
                               env={"PATH": ""})
    assert found == build.binary("scx_simple")


def test_a_build_of_an_older_recipe_is_used_but_built_again(tmp_path: Path) -> None:
    builder, _ = _builder(tmp_path)
    build = builder.build_series("9.9")
    assert build.recipe == BUILD_RECIPE and not build.stale
    meta = build.entry_dir / "metadata.json"
    raw = json.loads(meta.read_text())
    del raw["recipe"]  # metadata written before recipes existed
    meta.write_text(json.dumps(raw))
    old = builder.cache.for_series("9.9")
    assert old is not None and old.recipe == 1 and old.stale  # still found and usable
    again = builder.build_series("9.9")
    assert again.recipe == BUILD_RECIPE
    assert json.loads(meta.read_text())["recipe"] == BUILD_RECIPE


def test_failed_build_leaves_no_entry_and_shows_the_log(tmp_path: Path) -> None:
    builder, _ = _builder(tmp_path, FAILING_MAKEFILE)
    with pytest.raises(InfraError, match="BPF program is too large"):
        builder.build_series("9.9")
    assert builder.cache.builds() == []
    assert [p for p in builder.cache.root.iterdir() if not p.name.startswith(".locks")] == []


def test_unknown_series_lists_what_exists(tmp_path: Path) -> None:
    builder, _ = _builder(tmp_path)
    with pytest.raises(UserError, match=r"no linux-source-9\.8; source series available: 9\.9"):
        builder.build_series("9.8")


def test_kernel_of_another_series_is_refused(tmp_path: Path) -> None:
    builder, _ = _builder(tmp_path)
    with pytest.raises(UserError, match=r"not of series 9\.8"):
        builder.build_series("9.8", kernel="9.9.1")
