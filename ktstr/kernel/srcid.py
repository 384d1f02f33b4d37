"""What a kernel source tree *is*, for cache keys: ``SourceIdentity``.

- a git work tree: the ``HEAD`` commit plus a sha256 of ``git diff HEAD --binary`` and of
  the untracked (not ignored) files, so an uncommitted edit is a different source;
- Debian's ``linux-source-X.Y`` tarball extracted by ktstr: the package and its version;
- any other tree: a sha256 over every file's relative path, size and mtime (no content
  reads: ~80,000 stats take about a second), so an edit or a ``touch`` changes it.

``build_key`` (the kernel cache key of a build) and ``build_dir_name`` (the out-of-tree
directory, reused by incremental builds of the same tree and config) are pure.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import subprocess
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.kernel.id import sanitize_label

#: directories never part of a plain tree's identity (VCS data, in-tree build output)
_SKIP_DIRS = frozenset({".git", ".tmp_versions"})
_SKIP_SUFFIXES = (".o", ".cmd", ".a", ".ko", ".mod", ".d")


class SourceKind(enum.StrEnum):
    GIT = "git"
    TARBALL = "tarball"
    TREE = "tree"


class SourceIdentity(Frozen):
    kind: SourceKind
    root: Path
    version: str
    commit: str | None = None
    #: sha256 of the uncommitted changes (git) or of the file listing (tree)
    changes_sha256: str | None = None
    #: ``linux-source-7.2=7.2.13-1`` for a Debian tarball
    package: str | None = None

    @property
    def dirty(self) -> bool:
        return self.kind is SourceKind.GIT and self.changes_sha256 != EMPTY_SHA256

    @property
    def digest(self) -> str:
        """sha256 over what identifies the source (the location is not part of it: the
        same commit and diff elsewhere is the same kernel)."""
        parts = [self.kind.value, self.version, self.commit or "", self.changes_sha256 or "",
                 self.package or ""]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def describe(self) -> str:
        if self.kind is SourceKind.GIT:
            assert self.commit is not None
            state = "clean" if not self.dirty else f"dirty {self.changes_sha256 or ''}"[:18]
            return f"git {self.commit[:12]} ({state})"
        if self.kind is SourceKind.TARBALL:
            return f"Debian {self.package}"
        return f"tree {self.root} (listing {str(self.changes_sha256)[:12]})"


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


_MAKEFILE_VAR = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)[ \t]*=[ \t]*(.*?)[ \t]*$",
                           re.MULTILINE)


def makefile_version(text: str) -> str:
    """``make kernelversion`` from the top Makefile's text: ``7.2.13``, ``7.3.0-rc7``."""
    found: dict[str, str] = {}
    for name, value in _MAKEFILE_VAR.findall(text):
        found[name] = value
    if "VERSION" not in found or "PATCHLEVEL" not in found:
        raise UserError("the top Makefile has no VERSION/PATCHLEVEL: not a kernel tree")
    out = f"{found['VERSION']}.{found['PATCHLEVEL']}"
    if found.get("SUBLEVEL") not in (None, ""):
        out += f".{found['SUBLEVEL']}"
    return out + found.get("EXTRAVERSION", "")


def check_tree(root: Path) -> Path:
    """``root`` resolved, or a ``UserError`` when it is not a kernel source tree."""
    p = root.expanduser()
    if not p.is_dir():
        raise UserError(f"kernel source {root} is not a directory (give a kernel source "
                        "tree, or a version such as 7.2 for Debian's linux-source)")
    missing = [n for n in ("Makefile", "Kconfig", "arch/x86", "kernel/sched")
               if not (p / n).exists()]
    if missing:
        raise UserError(f"{p} is not a kernel source tree: no {', '.join(missing)}")
    return p.resolve()


def _git(root: Path, *args: str) -> bytes:
    argv = ["git", "-C", str(root), *args]
    try:
        proc = subprocess.run(argv, capture_output=True, check=False)
    except OSError as exc:
        raise InfraError(f"step 'git {args[0]}' could not start: {exc}") from exc
    if proc.returncode != 0:
        raise InfraError(f"step '{' '.join(argv)}' failed (exit {proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    return proc.stdout


def is_git_tree(root: Path) -> bool:
    return (root / ".git").exists()


def git_changes_digest(diff: bytes, untracked: dict[str, bytes]) -> str:
    """sha256 of a ``git diff HEAD --binary`` and the untracked files (name, content);
    the empty digest for a clean tree."""
    if not diff and not untracked:
        return EMPTY_SHA256
    h = hashlib.sha256(diff)
    for name in sorted(untracked):
        h.update(b"\0untracked\0" + name.encode() + b"\0" + untracked[name])
    return h.hexdigest()


def git_identity(root: Path, version: str) -> SourceIdentity:
    commit = _git(root, "rev-parse", "HEAD").decode().strip()
    diff = _git(root, "diff", "HEAD", "--binary")
    names = [n for n in _git(root, "ls-files", "--others", "--exclude-standard", "-z")
             .decode(errors="surrogateescape").split("\0") if n]
    untracked = {}
    for name in names:
        path = root / name
        if path.is_file() and not path.is_symlink():
            untracked[name] = path.read_bytes()
    return SourceIdentity(kind=SourceKind.GIT, root=root, version=version, commit=commit,
                          changes_sha256=git_changes_digest(diff, untracked))


def listing_digest(entries: list[tuple[str, int, int]]) -> str:
    """sha256 of (relative path, size, mtime_ns) triples, order-independent."""
    h = hashlib.sha256()
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode(errors="surrogateescape"))
    return h.hexdigest()


def tree_listing(root: Path) -> list[tuple[str, int, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            if name.endswith(_SKIP_SUFFIXES) or name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            out.append((os.path.relpath(full, root), st.st_size, st.st_mtime_ns))
    return out


def identify(root: Path, *, package: str | None = None) -> SourceIdentity:
    """The identity of the kernel tree at ``root``; ``package`` names a ktstr-extracted
    Debian tarball (its version is then the identity: the tree is ktstr's own copy)."""
    tree = check_tree(root)
    version = makefile_version((tree / "Makefile").read_text(errors="replace"))
    if package is not None:
        return SourceIdentity(kind=SourceKind.TARBALL, root=tree, version=version,
                              package=package)
    if is_git_tree(tree):
        return git_identity(tree, version)
    return SourceIdentity(kind=SourceKind.TREE, root=tree, version=version,
                          changes_sha256=listing_digest(tree_listing(tree)))


def build_key(identity: SourceIdentity, config_digest: str) -> str:
    """The kernel cache key of a build: ``VERSION+build-SRC10-CFG10``.

    It starts with the version, and ``+build`` sorts below Debian's ``+debN`` at the same
    version, so a version spec still prefers the fetched kernel in older readers too.
    """
    return sanitize_label(f"{identity.version}+build-{identity.digest[:10]}-"
                          f"{config_digest[:10]}")


def build_dir_name(root: Path, config_digest: str) -> str:
    """The out-of-tree build directory of a tree (by location) and a merged config: every
    build of that tree with that config, dirty or not, reuses it (incremental make)."""
    where = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return sanitize_label(f"{root.name}-{where}-{config_digest[:10]}")
