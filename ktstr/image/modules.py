"""Kernel modules for the guest: the dependency closure of wanted modules, in load order.

Debian's module packages ship ``lib/modules/VER/**.ko.xz`` without ``modules.dep``, so
the dependencies come from each module's own ``.modinfo`` section (``depends=a,b``),
read with pyelftools after decompression. Busybox ``insmod`` loads plain ``.ko`` only
and knows nothing of dependencies: the image gets the decompressed files and the init
loads them in the order :func:`closure` returns (dependencies first). Modules named in
``modules.builtin`` are part of the kernel image and are skipped.
"""

from __future__ import annotations

import difflib
import gzip
import io
import logging
import lzma
import subprocess
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError

log = logging.getLogger(__name__)

SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


class ModuleSet(Frozen):
    """Modules wanted in an image: a kernel's module tree and module names.

    ``release`` (``uname -r`` in the guest) defaults to the tree's folder name, which is
    right for a ``lib/modules/VER`` tree; give it when the tree lives elsewhere (the
    kernel cache keeps it as ``kernels/VER/modules``).
    """

    tree: Path
    names: tuple[str, ...]
    release: str = ""

    @property
    def kernel_release(self) -> str:
        return self.release or self.tree.name


class KernelModule(Frozen):
    name: str
    source: Path  # the file in the tree, possibly compressed
    relpath: str  # below the tree, ending in .ko: kernel/fs/9p/9p.ko
    depends: tuple[str, ...] = ()

    def guest_path(self, release: str) -> str:
        return str(PurePosixPath("/lib/modules") / release / self.relpath)


def normalize(name: str) -> str:
    """Module names treat '-' and '_' alike; the kernel reports them with '_'."""
    return name.strip().replace("-", "_")


def _strip_suffix(filename: str) -> tuple[str, str] | None:
    for suffix in SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)], suffix
    return None


def index_tree(tree: Path) -> dict[str, Path]:
    """Module name → file, for every module file below ``tree``."""
    if not tree.is_dir():
        raise UserError(f"kernel module tree {tree} does not exist; fetch the kernel's modules")
    found: dict[str, Path] = {}
    for path in sorted(tree.rglob("*.ko*")):
        split = _strip_suffix(path.name)
        if split is None or not path.is_file():
            continue
        name = normalize(split[0])
        if name in found and path.relative_to(tree).parts[0] != "updates":
            log.debug("module %s: keeping %s, ignoring %s", name, found[name], path)
            continue
        found[name] = path
    return found


def builtin_names(tree: Path) -> frozenset[str]:
    """Names in ``modules.builtin`` (``kernel/fs/ext4/ext4.ko`` per line), if present."""
    listing = tree / "modules.builtin"
    if not listing.exists():
        return frozenset()
    names = set()
    for line in listing.read_text().splitlines():
        split = _strip_suffix(PurePosixPath(line.strip()).name)
        if split:
            names.add(normalize(split[0]))
    return frozenset(names)


def decompress(path: Path) -> bytes:
    """The plain ``.ko`` bytes of a module file."""
    try:
        raw = path.read_bytes()
        if path.name.endswith(".xz"):
            return lzma.decompress(raw)
        if path.name.endswith(".gz"):
            return gzip.decompress(raw)
        if path.name.endswith(".zst"):
            done = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True)
            return done.stdout
        return raw
    except (OSError, lzma.LZMAError, subprocess.CalledProcessError) as exc:
        raise InfraError(f"cannot decompress kernel module {path}: {exc}") from exc


def modinfo(data: bytes, label: str = "module") -> dict[str, list[str]]:
    """The ``.modinfo`` key=value strings of a plain ``.ko``; keys may repeat."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        section = ELFFile(io.BytesIO(data)).get_section_by_name(".modinfo")
    except ELFError as exc:
        raise InfraError(f"{label} is not a valid ELF object: {exc}") from exc
    if section is None:
        raise InfraError(f"{label} has no .modinfo section; is it a kernel module?")
    info: dict[str, list[str]] = {}
    for item in section.data().split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info


def _depends(info: dict[str, list[str]]) -> tuple[str, ...]:
    return tuple(normalize(d) for text in info.get("depends", []) for d in text.split(",") if d)


def _unknown(name: str, tree: Path, index: dict[str, Path]) -> UserError:
    close = difflib.get_close_matches(name, list(index), n=5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return UserError(
        f"kernel module {name!r} not found: looked for {name}{{{','.join(SUFFIXES)}}} below "
        f"{tree} ({len(index)} modules there) and in modules.builtin{hint}. Check the name "
        f"(`modinfo -n NAME` on a host with that kernel) or pick a kernel flavour that has it"
    )


def closure(modules: ModuleSet) -> list[tuple[KernelModule, bytes]]:
    """The wanted modules and their dependencies, dependencies first, decompressed.

    Built-in modules are skipped; an unknown name is a ``UserError`` naming the tree.
    """
    index = index_tree(modules.tree)
    builtin = builtin_names(modules.tree)
    order: list[tuple[KernelModule, bytes]] = []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise InfraError(f"kernel modules depend on each other in a cycle: {cycle}")
        source = index.get(name)
        if source is None:
            if name in builtin:
                log.debug("module %s is built into the kernel", name)
                done.add(name)
                return
            raise _unknown(name, modules.tree, index)
        data = decompress(source)
        depends = _depends(modinfo(data, str(source)))
        for dep in depends:
            visit(dep, (*path, name))
        stem = _strip_suffix(source.name) or (source.name, "")
        relpath = source.relative_to(modules.tree).with_name(stem[0] + ".ko").as_posix()
        order.append(
            (KernelModule(name=name, source=source, relpath=relpath, depends=depends), data)
        )
        done.add(name)

    for wanted in modules.names:
        visit(normalize(wanted), ())
    return order


def load_list(modules: Iterable[KernelModule], release: str) -> str:
    """The guest paths in load order, one per line (the init reads this file)."""
    return "".join(m.guest_path(release) + "\n" for m in modules)
