"""Kernels given as paths: image files, built trees, dirty git trees."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ktstr.errors import UserError
from ktstr.kernel.cache import KernelCache, KernelSource
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.local import bzimage_version_string, image_release, local_version
from ktstr.testing.kernel import SCHED_EXT_CONFIG, fake_bzimage


def test_bzimage_header() -> None:
    assert bzimage_version_string(fake_bzimage("7.2.0-dev")) == "7.2.0-dev (fake@example) #1 SMP"
    assert bzimage_version_string(b"\0" * 0x1000) is None
    assert bzimage_version_string(b"short") is None


def test_local_version_falls_back_to_config_header(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("#\n# Automatically generated file; DO NOT EDIT.\n"
                      "# Linux/x86 7.3.0-rc2 Kernel Configuration\n")
    assert local_version(None, config) == "7.3.0-rc2"
    assert local_version("7.2.5-custom", config) == "7.2.5"
    assert local_version(None, None) == "0.0"


def test_image_file_with_config_beside(tmp_path: Path) -> None:
    img = tmp_path / "vmlinuz-7.2.0-dev"
    img.write_bytes(fake_bzimage("7.2.0-dev"))
    (tmp_path / "config-7.2.0-dev").write_text(SCHED_EXT_CONFIG)
    assert image_release(img) == "7.2.0-dev"
    cache = KernelCache(tmp_path / "kernels")
    (k,) = Fetcher(cache, archive=None).fetch(str(img))
    assert k.source is KernelSource.FILE and k.in_cache and k.sched_ext
    assert k.key.startswith("local-7.2.0-dev-") and k.version == "7.2.0"
    assert k.entry_dir.parent == cache.root and k.image_path.read_bytes() == img.read_bytes()
    # the same file again is the same entry; its key works as a spec
    assert Fetcher(cache).fetch(str(img))[0].entry_dir == k.entry_dir
    assert Fetcher(cache).fetch(k.key)[0].entry_dir == k.entry_dir


def _tree(root: Path) -> Path:
    (root / "arch/x86/boot").mkdir(parents=True)
    (root / "arch/x86/boot/bzImage").write_bytes(fake_bzimage("7.3.0-rc1-dev"))
    (root / ".config").write_text(SCHED_EXT_CONFIG)
    return root


def test_clean_tree_is_cached(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "linux")
    (k,) = Fetcher(KernelCache(tmp_path / "kernels")).fetch(str(tree))
    assert k.source is KernelSource.TREE and k.in_cache and k.version == "7.3.0-rc1"
    assert k.key.startswith("tree-7.3.0-rc1-dev-")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_git_tree_is_used_in_place(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "linux")
    (tree / "Makefile").write_text("v1\n")
    git = ["git", "-C", str(tree), "-c", "user.email=t@localhost", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "Makefile"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    (tree / "Makefile").write_text("v2\n")
    cache = KernelCache(tmp_path / "kernels")
    (k,) = Fetcher(cache).fetch(str(tree))
    assert not k.in_cache and k.key.endswith("-dirty")
    assert k.image_path == tree.resolve() / "arch/x86/boot/bzImage"
    assert cache.scan() == []


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        Fetcher(KernelCache(tmp_path / "k")).fetch(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"not a built kernel tree: arch/x86/boot/bzImage"):
        Fetcher(KernelCache(tmp_path / "k")).fetch(str(tmp_path / "empty"))
