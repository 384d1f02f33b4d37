"""Kernel module closure from .modinfo, on small synthetic module trees."""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

import pytest

from ktstr.errors import InfraError, UserError
from ktstr.image import modules
from ktstr.image.modules import ModuleSet, closure, load_list, modinfo

RELEASE = "7.2.13+deb14-amd64"


def fake_ko(info: dict[str, str], section: str = ".modinfo") -> bytes:
    """A minimal ELF64 relocatable object with one data section of key=value strings."""
    payload = b"".join(f"{k}={v}".encode() + b"\0" for k, v in info.items())
    shstrtab = b"\0" + section.encode() + b"\0.shstrtab\0"
    data_at = 64
    strtab_at = data_at + len(payload)
    shoff = (strtab_at + len(shstrtab) + 7) & ~7
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)

    def shdr(name: int, kind: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, kind, 0, 0, offset, size, 0, 0, 1, 0)

    body = header + payload + shstrtab
    body += bytes(shoff - len(body))
    return (
        body
        + shdr(0, 0, 0, 0)
        + shdr(1, 1, data_at, len(payload))
        + shdr(len(section) + 2, 3, strtab_at, len(shstrtab))
    )


def _tree(tmp_path: Path) -> Path:
    """The 9p and vsock families as Debian ships them (xz, no modules.dep) plus odd cases."""
    tree = tmp_path / "lib" / "modules" / RELEASE
    layout = {
        "kernel/fs/netfs/netfs.ko.xz": "",
        "kernel/net/9p/9pnet.ko.xz": "",
        "kernel/fs/9p/9p.ko.xz": "netfs,9pnet",
        "kernel/net/9p/9pnet_virtio.ko.xz": "9pnet,virtio_ring",
        "kernel/net/vmw_vsock/vsock.ko.gz": "",
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko": "vsock",
        "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko.xz": (
            "vmw_vsock_virtio_transport_common,vsock"
        ),
        "kernel/drivers/x/dash-name.ko.xz": "",
        "kernel/drivers/x/loop_a.ko.xz": "loop_b",
        "kernel/drivers/x/loop_b.ko.xz": "loop_a",
        "kernel/drivers/x/lost.ko.xz": "nowhere",
    }
    for rel, depends in layout.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ko = fake_ko({"license": "GPL", "depends": depends, "name": path.name.split(".")[0]})
        if rel.endswith(".xz"):
            ko = lzma.compress(ko, format=lzma.FORMAT_XZ)
        elif rel.endswith(".gz"):
            ko = gzip.compress(ko, mtime=0)
        path.write_bytes(ko)
    (tree / "modules.builtin").write_text("kernel/drivers/virtio/virtio_ring.ko\n")
    return tree


def test_9p_closure_is_in_load_order_and_decompressed(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    result = closure(ModuleSet(tree=tree, names=("9p", "9pnet_virtio")))
    assert [m.name for m, _ in result] == ["netfs", "9pnet", "9p", "9pnet_virtio"]
    nine_p, data = result[2]
    assert nine_p.depends == ("netfs", "9pnet")
    assert nine_p.relpath == "kernel/fs/9p/9p.ko"
    assert nine_p.guest_path(RELEASE) == f"/lib/modules/{RELEASE}/kernel/fs/9p/9p.ko"
    assert data.startswith(b"\x7fELF")
    assert modinfo(data)["depends"] == ["netfs,9pnet"]


def test_vsock_closure_mixes_compressions(tmp_path: Path) -> None:
    result = closure(ModuleSet(tree=_tree(tmp_path), names=("vmw_vsock_virtio_transport",)))
    assert [m.name for m, _ in result] == [
        "vsock",
        "vmw_vsock_virtio_transport_common",
        "vmw_vsock_virtio_transport",
    ]
    assert all(data.startswith(b"\x7fELF") for _, data in result)


def test_dashes_and_underscores_are_the_same_name(tmp_path: Path) -> None:
    result = closure(ModuleSet(tree=_tree(tmp_path), names=("dash_name", "dash-name")))
    assert [(m.name, m.relpath) for m, _ in result] == [
        ("dash_name", "kernel/drivers/x/dash-name.ko")
    ]


def test_builtin_modules_are_skipped(tmp_path: Path) -> None:
    result = closure(ModuleSet(tree=_tree(tmp_path), names=("virtio_ring", "9pnet")))
    assert [m.name for m, _ in result] == ["9pnet"]


def test_load_list_names_guest_paths_in_order(tmp_path: Path) -> None:
    result = closure(ModuleSet(tree=_tree(tmp_path), names=("9p",)))
    assert load_list([m for m, _ in result], RELEASE) == (
        f"/lib/modules/{RELEASE}/kernel/fs/netfs/netfs.ko\n"
        f"/lib/modules/{RELEASE}/kernel/net/9p/9pnet.ko\n"
        f"/lib/modules/{RELEASE}/kernel/fs/9p/9p.ko\n"
    )


def test_release_is_the_tree_name_unless_given(tmp_path: Path) -> None:
    assert ModuleSet(tree=_tree(tmp_path), names=()).kernel_release == RELEASE
    given = ModuleSet(tree=tmp_path / "modules", names=(), release="7.3.4+deb13-amd64")
    assert given.kernel_release == "7.3.4+deb13-amd64"


def test_unknown_module_lists_where_it_looked_and_close_names(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    with pytest.raises(UserError) as caught:
        closure(ModuleSet(tree=tree, names=("9pnet_virtoi",)))
    message = str(caught.value)
    assert "kernel module '9pnet_virtoi' not found" in message
    assert f"below {tree} (11 modules there) and in modules.builtin" in message
    assert "close matches: 9pnet_virtio" in message


def test_unknown_dependency_is_reported_too(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="kernel module 'nowhere' not found"):
        closure(ModuleSet(tree=_tree(tmp_path), names=("lost",)))


def test_a_dependency_cycle_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="cycle: loop_a -> loop_b -> loop_a"):
        closure(ModuleSet(tree=_tree(tmp_path), names=("loop_a",)))


def test_a_missing_tree_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"kernel module tree .*nope does not exist"):
        closure(ModuleSet(tree=tmp_path / "nope", names=("9p",)))


def test_a_module_without_modinfo_is_rejected() -> None:
    with pytest.raises(InfraError, match=r"x\.ko has no \.modinfo section"):
        modinfo(fake_ko({"a": "b"}, section=".data"), "x.ko")


def test_garbage_is_not_a_module() -> None:
    with pytest.raises(InfraError, match=r"x\.ko is not a valid ELF object"):
        modinfo(b"\x7fELF garbage", "x.ko")


def test_corrupt_compression_is_an_infra_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ko.xz"
    bad.write_bytes(b"not xz")
    with pytest.raises(InfraError, match=r"cannot decompress kernel module .*bad\.ko\.xz"):
        modules.decompress(bad)
