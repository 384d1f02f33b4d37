"""The newc writer: read back by GNU cpio, deterministic, kernel-friendly layout."""

from __future__ import annotations

import io
import stat
import subprocess
from pathlib import Path

import pytest

from ktstr.errors import InfraError, UserError
from ktstr.image.cpio import CpioWriter, archive_name, read_entries


def _sample(tmp_path: Path) -> bytes:
    host = tmp_path / "host.bin"
    host.write_bytes(b"\x7fELF" + bytes(range(256)) * 20 + b"x")  # odd size: needs padding
    host.chmod(0o755)
    out = io.BytesIO()
    with CpioWriter(out) as cpio:
        cpio.add_dir("/etc", mode=0o750)
        cpio.add_file("/etc/hostname", b"ktstr\n")
        cpio.add_file_from("/usr/bin/tool", host, links=["/bin/tool", "/sbin/tool2"])
        cpio.add_file("/init", b"#!/bin/sh\n", mode=0o755)
        cpio.add_symlink("/bin/sh", "busybox")
        cpio.add_char_device("/dev/console", 5, 1)
        cpio.add_file("/empty", b"")
    return out.getvalue()


def _cpio(args: list[str], archive: bytes, cwd: Path) -> str:
    done = subprocess.run(["cpio", *args], input=archive, cwd=cwd, capture_output=True, check=True)
    return done.stdout.decode()


def test_gnu_cpio_lists_every_entry_with_parents_first(tmp_path: Path) -> None:
    listing = _cpio(["-t", "--quiet"], _sample(tmp_path), tmp_path).split()
    assert listing == [
        "etc",
        "etc/hostname",
        "usr",
        "usr/bin",
        "usr/bin/tool",
        "bin",
        "bin/tool",
        "sbin",
        "sbin/tool2",
        "init",
        "bin/sh",
        "dev",
        "dev/console",
        "empty",
    ]


def test_gnu_cpio_extracts_contents_modes_links(tmp_path: Path) -> None:
    archive = _sample(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    _cpio(["-i", "-d", "--quiet", "--no-absolute-filenames"], archive, root)
    host = (tmp_path / "host.bin").read_bytes()
    assert (root / "usr/bin/tool").read_bytes() == host
    assert (root / "bin/tool").read_bytes() == host
    assert (root / "bin/tool").stat().st_ino == (root / "usr/bin/tool").stat().st_ino
    assert (root / "sbin/tool2").stat().st_nlink == 3
    assert stat.S_IMODE((root / "usr/bin/tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "etc/hostname").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o750
    assert (root / "etc/hostname").read_text() == "ktstr\n"
    assert (root / "bin/sh").is_symlink()
    assert str((root / "bin/sh").readlink()) == "busybox"
    assert (root / "empty").read_bytes() == b""
    assert stat.S_ISCHR((root / "dev/console").lstat().st_mode)
    assert (root / "dev/console").lstat().st_rdev == ((5 << 8) | 1)


def test_output_is_deterministic_and_owned_by_root_at_epoch(tmp_path: Path) -> None:
    first = _sample(tmp_path)
    assert _sample(tmp_path) == first
    entries = read_entries(first)
    assert {(e.uid, e.gid, e.mtime) for e in entries} == {(0, 0, 0)}
    assert len(first) % 4 == 0
    assert first.endswith(b"TRAILER!!!\0" + b"\0" * ((4 - (110 + 11) % 4) % 4))


def test_hard_links_share_an_inode_and_only_the_first_carries_data(tmp_path: Path) -> None:
    by_name = {e.name: e for e in read_entries(_sample(tmp_path))}
    tool, link = by_name["usr/bin/tool"], by_name["bin/tool"]
    assert tool.ino == link.ino == by_name["sbin/tool2"].ino
    assert (tool.nlink, link.nlink) == (3, 3)
    assert len(tool.data) == 5125 and link.data == b""
    assert len({e.ino for e in by_name.values()}) == len(by_name) - 2


def test_every_header_starts_on_a_four_byte_boundary(tmp_path: Path) -> None:
    archive = _sample(tmp_path)
    offsets = [i for i in range(len(archive)) if archive.startswith(b"070701", i)]
    assert offsets and all(o % 4 == 0 for o in offsets)


def test_archive_name_normalizes() -> None:
    assert archive_name("/usr//bin/./x") == "usr/bin/x"
    assert archive_name("lib/y") == "lib/y"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/", "names the root"),
        ("/a/../etc", "contains '..'"),
        ("/a\0b", "NUL byte"),
    ],
)
def test_bad_names_are_rejected(path: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        archive_name(path)


def test_a_path_added_twice_is_rejected() -> None:
    cpio = CpioWriter(io.BytesIO())
    cpio.add_file("/x", b"1")
    with pytest.raises(UserError, match="cpio entry /x is added twice"):
        cpio.add_symlink("/x", "y")


def test_adding_a_directory_twice_is_harmless() -> None:
    out = io.BytesIO()
    with CpioWriter(out) as cpio:
        cpio.add_dir("/a")
        cpio.add_dir("/a/")
    assert [e.name for e in read_entries(out.getvalue())] == ["a"]


def test_a_link_naming_its_own_file_is_rejected() -> None:
    with pytest.raises(UserError, match="lists the same name twice"):
        CpioWriter(io.BytesIO()).add_file("/x", b"1", links=["/x"])


def test_a_directory_as_file_source_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a regular file"):
        CpioWriter(io.BytesIO()).add_file_from("/x", tmp_path)


def test_a_missing_source_is_an_infra_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=r"cannot read .*nope for cpio entry '/x'"):
        CpioWriter(io.BytesIO()).add_file_from("/x", tmp_path / "nope")


def test_empty_symlink_target_is_rejected() -> None:
    with pytest.raises(UserError, match="empty target"):
        CpioWriter(io.BytesIO()).add_symlink("/x", "")


def test_adding_after_close_is_an_error() -> None:
    cpio = CpioWriter(io.BytesIO())
    cpio.close()
    with pytest.raises(InfraError, match="already closed"):
        cpio.add_file("/x", b"")


def test_reader_rejects_non_newc_bytes() -> None:
    with pytest.raises(UserError, match="no newc header at offset 0"):
        read_entries(b"\x1f\x8b compressed")
