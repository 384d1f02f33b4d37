"""The cached base image, the per-run segment and their composition."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import zlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from ktstr import paths
from ktstr.errors import UserError
from ktstr.image import builder, cache, elf
from ktstr.image.builder import Compression, ImageSpec, build_base, compose, run_segment
from ktstr.image.cpio import Entry, read_entries
from ktstr.image.modules import ModuleSet

INIT = "#!/bin/busybox sh\necho hello\n"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def include(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_text("payload\n")
    return path


def _spec(include: Path, **fields: object) -> ImageSpec:
    return ImageSpec(
        init=INIT,
        binaries={"/usr/bin/ls": Path("/bin/ls")},
        files={"/include-files/data.txt": include, "/include-files/copy.txt": include},
        directories=("/ktstr", "/var/log"),
        **fields,
    )


def _entries(image: Path) -> dict[str, Entry]:
    data = image.read_bytes()
    if image.name.endswith(".gz"):
        data = zlib.decompressobj(wbits=31).decompress(data)  # ignores the zero padding
    elif image.name.endswith(".zst"):
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return {e.name: e for e in read_entries(data)}


def test_base_image_contents(include: Path) -> None:
    image = build_base(_spec(include))
    assert image.parent == paths.images_dir() and image.name.startswith("base-")
    entries = _entries(image)
    init = entries["init"]
    assert init.data == INIT.encode() and stat.S_IMODE(init.mode) == 0o755
    assert entries["bin/busybox"].data == Path("/bin/busybox").read_bytes()
    assert entries["bin/sh"].data == b"/bin/busybox" and stat.S_ISLNK(entries["bin/sh"].mode)
    assert entries["sbin/insmod"].data == b"/bin/busybox"
    assert entries["usr/bin/ls"].data == Path("/bin/ls").read_bytes()
    assert "usr/bin/ls" in entries and not stat.S_ISLNK(entries["usr/bin/ls"].mode)
    libc = entries["lib/x86_64-linux-gnu/libc.so.6"]
    assert stat.S_ISREG(libc.mode)
    assert libc.data == Path(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")).read_bytes()
    assert stat.S_ISREG(entries["lib64/ld-linux-x86-64.so.2"].mode)
    console = entries["dev/console"]
    assert stat.S_ISCHR(console.mode) and console.rdev == (5, 1)
    assert stat.S_IMODE(entries["tmp"].mode) == 0o1777
    assert stat.S_ISDIR(entries["var/log"].mode) and stat.S_ISDIR(entries["ktstr"].mode)
    assert stat.S_IMODE(entries["include-files/data.txt"].mode) == 0o644


def test_duplicate_content_becomes_a_hard_link(include: Path) -> None:
    entries = _entries(build_base(_spec(include)))
    copy, data = entries["include-files/copy.txt"], entries["include-files/data.txt"]
    assert copy.ino == data.ino and copy.nlink == data.nlink == 2
    assert copy.data == b"payload\n" and data.data == b""


def test_warm_build_reads_no_input_file(include: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(include)
    first = build_base(spec)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a warm build read its inputs")

    monkeypatch.setattr(cache, "sha256_file", forbidden)
    monkeypatch.setattr(elf, "closure", forbidden)
    monkeypatch.setattr(builder, "_applets", forbidden)
    assert build_base(spec) == first


def test_a_changed_input_rebuilds(include: Path) -> None:
    first = build_base(_spec(include))
    include.write_text("other payload\n")
    second = build_base(_spec(include))
    assert second != first
    assert (
        _entries(second)["include-files/copy.txt"].data == b"other payload\n"
    )  # data.txt links it
    assert first.exists()  # older images stay until pruned


def test_a_lost_image_is_rebuilt(include: Path) -> None:
    first = build_base(_spec(include))
    first.unlink()
    assert build_base(_spec(include)) == first and first.is_file()


@pytest.mark.parametrize("compression", list(Compression))
def test_images_are_reproducible_and_padded(
    include: Path, compression: Compression, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_base(_spec(include, compression=compression)).read_bytes()
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "other-cache"))
    second = build_base(_spec(include, compression=compression))
    assert second.read_bytes() == first
    assert second.name.endswith(compression.suffix)
    assert len(first) % 4 == 0
    assert "usr/bin/ls" in _entries(second)


def test_parallel_builders_make_one_good_image(include: Path) -> None:
    spec = _spec(include, compression=Compression.ZSTD)
    results: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def build() -> None:
        start.wait(timeout=30)
        try:
            results.append(build_base(spec))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(set(results)) == 1
    assert "init" in _entries(results[0])
    assert [p.name for p in paths.images_dir().glob("*.tmp")] == []


def test_modules_are_decompressed_with_a_load_order(include: Path, tmp_path: Path) -> None:
    from test_image_modules import RELEASE, _tree

    tree = _tree(tmp_path)
    spec = _spec(include, modules=ModuleSet(tree=tree, names=("9p",)))
    entries = _entries(build_base(spec))
    base = f"lib/modules/{RELEASE}"
    assert entries[f"{base}/kernel/fs/9p/9p.ko"].data.startswith(b"\x7fELF")
    assert entries[f"{base}/{builder.MODULE_LOAD_LIST}"].data.decode().splitlines() == [
        f"/{base}/kernel/fs/netfs/netfs.ko",
        f"/{base}/kernel/net/9p/9pnet.ko",
        f"/{base}/kernel/fs/9p/9p.ko",
    ]


def test_user_files_win_over_applet_links(tmp_path: Path) -> None:
    script = tmp_path / "sh"
    script.write_text("not busybox\n")
    entries = _entries(build_base(ImageSpec(init=INIT, files={"/bin/sh": script})))
    assert entries["bin/sh"].data == b"not busybox\n" and stat.S_ISREG(entries["bin/sh"].mode)


def test_applets_can_be_left_to_the_init() -> None:
    entries = _entries(build_base(ImageSpec(init=INIT, applets=False)))
    assert "bin/sh" not in entries and "bin/busybox" in entries


def test_an_overlay_leaves_out_the_libraries_below_it() -> None:
    """The C runtime sits in the base a snapshot holds; the overlay sent after each
    restore leaves it out, but keeps every library the base does not have."""
    runtime = elf.c_runtime()
    assert set(runtime) == {"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"}
    base = _entries(build_base(ImageSpec(init=INIT, files=runtime)))
    assert "lib/x86_64-linux-gnu/libc.so.6" in base and "lib64/ld-linux-x86-64.so.2" in base

    def overlay(provided: dict[str, Path]) -> dict[str, Entry]:
        return _entries(build_base(ImageSpec(
            init=None, busybox=None, applets=False,
            binaries={"/usr/bin/ls": Path("/bin/ls")}, provided=provided)))

    full, lean = overlay({}), overlay(runtime)
    assert "lib/x86_64-linux-gnu/libc.so.6" in full and "lib64/ld-linux-x86-64.so.2" in full
    assert "lib/x86_64-linux-gnu/libc.so.6" not in lean
    assert "lib64/ld-linux-x86-64.so.2" not in lean
    others = {n for n in full if n.startswith("lib/") and "libc.so" not in n}
    assert others and others <= set(lean)  # ls's other libraries (libselinux...) stay
    # a library the base has from another host file is still sent
    other_host = overlay({"/lib/x86_64-linux-gnu/libc.so.6": Path("/bin/true")})
    assert "lib/x86_64-linux-gnu/libc.so.6" in other_host


def test_no_shared_runtime_without_a_dynamic_reference(tmp_path: Path) -> None:
    assert elf.c_runtime(Path("/bin/busybox")) == {}  # static
    assert elf.c_runtime(tmp_path / "missing") == {}


# -- per-run segment and composition ----------------------------------------------------


def test_run_segment_keeps_base_directory_modes(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    entries = {
        e.name: e
        for e in read_entries(
            run_segment({"/tmp/run/p": b"x", "/ktstr/cmd.sh": b"true", "/t": tool})
        )
    }
    assert stat.S_IMODE(entries["tmp"].mode) == 0o1777
    assert stat.S_IMODE(entries["ktstr"].mode) == 0o755
    assert stat.S_IMODE(entries["ktstr/cmd.sh"].mode) == 0o644
    assert stat.S_IMODE(entries["t"].mode) == 0o755
    assert run_segment({"/a": b"1", "/b": b"2"}) == run_segment({"/b": b"2", "/a": b"1"})


def test_compose_pads_the_base_and_appends_the_segment(tmp_path: Path) -> None:
    base = tmp_path / "base.cpio.zst"
    base.write_bytes(b"\x28\xb5\x2f\xfd" + b"z" * 5)  # 9 bytes: needs 3 bytes of padding
    segment = run_segment({"/ktstr/params.sh": b"A=1\n"})
    out = compose(base, segment, tmp_path / "initrd")
    assert out.read_bytes() == base.read_bytes() + b"\0\0\0" + segment


def test_composed_initrd_of_a_real_base(include: Path, tmp_path: Path) -> None:
    base = build_base(_spec(include))
    segment = run_segment({"/ktstr/params.sh": b"A=1\n"})
    data = compose(base, segment, tmp_path / "initrd").read_bytes()
    assert data[: base.stat().st_size] == base.read_bytes()
    assert read_entries(data[base.stat().st_size :])[-1].data == b"A=1\n"


# -- rejected input ----------------------------------------------------------------------


def test_a_dynamic_busybox_is_rejected() -> None:
    with pytest.raises(
        UserError, match="/bin/ls is not a static ELF binary; install busybox-static"
    ):
        build_base(ImageSpec(init=INIT, busybox=Path("/bin/ls")))


def test_a_relative_guest_path_is_rejected(include: Path) -> None:
    with pytest.raises(ValidationError, match="guest path 'etc/x' must be absolute"):
        ImageSpec(init=INIT, files={"etc/x": include})


def test_relative_host_paths_are_made_absolute(
    include: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(include.parent)
    spec = ImageSpec(init=INIT, files={"/x": Path(include.name)})
    assert spec.files == {"/x": include}


def test_two_files_at_one_guest_path_are_rejected(include: Path) -> None:
    spec = ImageSpec(init=INIT, files={"/x": include}, binaries={"/x": Path("/bin/ls")})
    with pytest.raises(UserError, match="guest path /x gets two different files"):
        build_base(spec)


def test_a_missing_include_file_is_rejected(tmp_path: Path) -> None:
    spec = ImageSpec(init=INIT, files={"/include-files/x": tmp_path / "nope"})
    with pytest.raises(UserError, match=r"nope \(for guest path /include-files/x\) cannot be read"):
        build_base(spec)


def test_a_file_where_a_directory_is_asked_for_is_rejected(include: Path) -> None:
    spec = ImageSpec(init=INIT, files={"/ktstr": include}, directories=("/ktstr",))
    with pytest.raises(UserError, match="guest path /ktstr is already a directory"):
        build_base(spec)


def test_compose_without_a_base_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="build it with build_base"):
        compose(tmp_path / "none.cpio", b"", tmp_path / "initrd")
