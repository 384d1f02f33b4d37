"""Kernels given as paths: a bzImage/vmlinuz file, or a built kernel tree.

- A file: the image; a config beside it is used when found (``config``, ``.config``,
  ``config-RELEASE`` for ``vmlinuz-RELEASE``), likewise ``System.map``.
- A tree: ``arch/x86/boot/bzImage`` + ``.config`` (+ ``System.map``). A git tree with
  uncommitted changes is *not* cached: it is used in place, so a rebuild is always seen.

The release string comes from the bzImage header (``kernel_version`` field), so it is
known even without a config.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.kernel.cache import CachedKernel, KernelCache, KernelSource, finish_entry, sha256_file
from ktstr.kernel.id import sanitize_label, upstream_version

log = logging.getLogger(__name__)

TREE_IMAGE = Path("arch/x86/boot/bzImage")
_HDR_MAGIC_OFFSET = 0x202
_VERSION_PTR_OFFSET = 0x20E


def bzimage_version_string(data: bytes) -> str | None:
    """The ``kernel_version`` string of an x86 bzImage header, or None."""
    if len(data) < 0x210 or data[_HDR_MAGIC_OFFSET:_HDR_MAGIC_OFFSET + 4] != b"HdrS":
        return None
    ptr = int.from_bytes(data[_VERSION_PTR_OFFSET:_VERSION_PTR_OFFSET + 2], "little")
    start = ptr + 0x200
    if ptr == 0 or start >= len(data):
        return None
    end = data.find(b"\0", start, start + 512)
    raw = data[start:end if end >= 0 else start + 512]
    text = raw.decode("ascii", errors="replace").strip()
    return text or None


def image_release(image: Path) -> str | None:
    """``uname -r`` of a bzImage (first word of its version string)."""
    with image.open("rb") as f:
        text = bzimage_version_string(f.read(0x8000))
    return text.split()[0] if text else None


class LocalKernel(Frozen):
    """Where the files of a path spec are."""

    source: KernelSource
    image: Path
    config: Path | None = None
    system_map: Path | None = None
    root: Path
    dirty: bool = False


def locate(path: Path) -> LocalKernel:
    """Classify a path spec; ``UserError`` when it is neither an image nor a built tree."""
    p = path.expanduser()
    if p.is_dir():
        image = p / TREE_IMAGE
        if not image.is_file():
            raise UserError(f"{p} is a directory but not a built kernel tree: {TREE_IMAGE} is "
                            "missing (run `make bzImage` there, or pass the image file)")
        config = p / ".config"
        smap = p / "System.map"
        return LocalKernel(source=KernelSource.TREE, image=image.resolve(), root=p.resolve(),
                           config=config if config.is_file() else None,
                           system_map=smap if smap.is_file() else None, dirty=git_dirty(p))
    if p.is_file():
        return LocalKernel(source=KernelSource.FILE, image=p.resolve(), root=p.parent.resolve(),
                           config=_beside(p, ("config", ".config"), "config-"),
                           system_map=_beside(p, ("System.map",), "System.map-"))
    raise UserError(f"kernel path {path} does not exist; give a bzImage/vmlinuz file or a "
                    "built kernel tree")


def _beside(image: Path, names: tuple[str, ...], versioned_prefix: str) -> Path | None:
    suffix = image.name.split("-", 1)[1] if "-" in image.name else None
    candidates = [image.parent / n for n in names]
    if suffix:
        candidates.insert(0, image.parent / f"{versioned_prefix}{suffix}")
    return next((c for c in candidates if c.is_file()), None)


def git_dirty(tree: Path) -> bool:
    """Whether ``tree`` is a git work tree with uncommitted changes to tracked files."""
    if shutil.which("git") is None or not (tree / ".git").exists():
        return False
    proc = subprocess.run(["git", "-C", str(tree), "status", "--porcelain",
                           "--untracked-files=no"], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def local_key(local: LocalKernel, release: str | None, sha: str) -> str:
    prefix = "tree" if local.source is KernelSource.TREE else "local"
    return sanitize_label(f"{prefix}-{release or local.image.name}-{sha[:12]}")


def local_version(release: str | None, config: Path | None) -> str:
    """The upstream version from the release, else from the config's header line
    (``# Linux/x86 7.2.13 Kernel Configuration``); ``0.0`` when neither says."""
    header = None
    if config is not None:
        with config.open(errors="replace") as f:
            head = "".join(f.readline() for _ in range(4))
        m = re.search(r"Linux/\S+ (\S+) Kernel Configuration", head)
        header = m.group(1) if m else None
    for text in (release, header):
        if not text:
            continue
        try:
            return upstream_version(text)
        except UserError:
            continue
    return "0.0"


def use_local(path: Path, cache: KernelCache) -> CachedKernel:
    """The kernel at ``path``: copied into the cache, or used in place for a dirty tree."""
    local = locate(path)
    release = image_release(local.image)
    sha = sha256_file(local.image)
    key = local_key(local, release, sha)
    fields: dict[str, object] = {
        "key": key, "version": local_version(release, local.config), "release": release,
        "source": local.source, "origin": str(path),
    }
    if local.dirty:
        log.info("%s has uncommitted changes: using it in place, not caching it", local.root)
        rel = {"image": str(local.image.relative_to(local.root))}
        if local.config:
            rel["config"] = str(local.config.relative_to(local.root))
        if local.system_map:
            rel["system_map"] = str(local.system_map.relative_to(local.root))
        kernel = finish_entry(local.root, **fields, **rel, size_bytes=local.image.stat().st_size)
        return kernel.model_copy(update={"key": key + "-dirty", "in_cache": False})

    def build(tmp: Path) -> CachedKernel:
        shutil.copy2(local.image, tmp / "vmlinuz")
        names: dict[str, object] = {"image": "vmlinuz"}
        if local.config:
            shutil.copy2(local.config, tmp / "config")
            names["config"] = "config"
        if local.system_map:
            shutil.copy2(local.system_map, tmp / "System.map")
            names["system_map"] = "System.map"
        return finish_entry(tmp, **fields, **names)

    return cache.ensure(key, build)
