"""What goes where in an image, before any byte is written.

A ``Layout`` collects directories, files (from host paths or bytes), symlinks and device
nodes by guest path, refuses two different sources for one path, computes the content
key of the whole image and writes it through a ``CpioWriter`` in a fixed order: the
standard directories, then every other entry sorted by path. Files with the same
content and mode are stored once; the other paths become hard links.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ktstr.errors import UserError
from ktstr.image.cache import HashStore, identity
from ktstr.image.cpio import CpioWriter, archive_name

#: the directories every image has, by archive name, with their modes
DIR_MODES: dict[str, int] = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "lib": 0o755,
    "mnt": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "run": 0o755,
    "sbin": 0o755,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
}


@dataclass(frozen=True)
class _Content:
    mode: int
    host: Path | None = None
    data: bytes | None = None


class Layout:
    def __init__(self) -> None:
        self._dirs: dict[str, int] = dict(DIR_MODES)
        self._contents: dict[str, _Content] = {}
        self._symlinks: dict[str, str] = {}
        self._nodes: dict[str, tuple[int, int, int]] = {"dev/console": (0o600, 5, 1)}
        self._watched: set[str] = set()
        self._digests: dict[str, str] = {}

    # -- building up ----------------------------------------------------------------

    def taken(self, guest: str) -> bool:
        name = archive_name(guest)
        return any(name in d for d in (self._dirs, self._contents, self._symlinks, self._nodes))

    def add_dir(self, guest: str, mode: int = 0o755) -> None:
        name = archive_name(guest)
        if name in self._contents or name in self._symlinks:
            raise UserError(f"guest path {guest} is asked for as a directory and as a file")
        self._dirs.setdefault(name, mode)

    def add_file(self, guest: str, host: Path, mode: int | None = None) -> None:
        try:
            st = os.stat(host)
        except OSError as exc:
            raise UserError(f"{host} (for guest path {guest}) cannot be read: {exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{host} (for guest path {guest}) is not a regular file")
        if mode is None:
            mode = 0o755 if st.st_mode & 0o111 else 0o644
        self._put(guest, _Content(mode=mode, host=host))

    def add_blob(self, guest: str, data: bytes, mode: int = 0o644) -> None:
        self._put(guest, _Content(mode=mode, data=data))

    def add_symlink(self, guest: str, target: str) -> None:
        name = archive_name(guest)
        if self.taken(guest):
            raise UserError(f"guest path {guest} is taken; cannot make it a symlink")
        self._symlinks[name] = target

    def watch(self, host: Path) -> None:
        """A host file whose change (or appearance) must invalidate the cached image."""
        self._watched.add(str(host))

    def _put(self, guest: str, content: _Content) -> None:
        name = archive_name(guest)
        old = self._contents.get(name)
        if old is not None:
            if old == content or (
                old.host and content.host and os.path.samefile(old.host, content.host)
            ):
                return
            raise UserError(
                f"guest path {guest} gets two different files: {_label(old)} and "
                f"{_label(content)}; give each its own guest path"
            )
        if name in self._dirs or name in self._symlinks or name in self._nodes:
            raise UserError(f"guest path {guest} is already a directory, symlink or device")
        self._contents[name] = content

    # -- keys and bytes -------------------------------------------------------------

    def content_key(self, hashes: HashStore, *salt: str) -> tuple[str, dict[str, list[int]]]:
        """SHA-256 of everything the image will contain, and the identities of its inputs."""
        inputs: dict[str, list[int]] = {}
        records: list[list[object]] = [list(salt)]
        for name, mode in sorted(self._dirs.items()):
            records.append(["d", name, mode])
        for name, content in sorted(self._contents.items()):
            if content.host is not None:
                digest, ident = hashes.digest(content.host)
                inputs[str(content.host)] = list(ident)
            else:
                digest = hashlib.sha256(content.data or b"").hexdigest()
            self._digests[name] = digest
            records.append(["f", name, content.mode, digest])
        for name, target in sorted(self._symlinks.items()):
            records.append(["l", name, target])
        for name, node in sorted(self._nodes.items()):
            records.append(["c", name, *node])
        for path in sorted(self._watched):
            watched = identity(path)
            inputs[path] = list(watched) if watched else []
        text = json.dumps(records, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest(), inputs

    def write(self, writer: CpioWriter) -> None:
        """Write every entry and close the archive; ``content_key`` must have run."""
        for name, mode in sorted(self._dirs.items()):
            writer.add_dir(name, mode)
        groups: dict[tuple[str, int], list[str]] = {}
        for name, content in sorted(self._contents.items()):
            groups.setdefault((self._digests[name], content.mode), []).append(name)
        first_of = {names[0]: names[1:] for names in groups.values()}
        entries = sorted([*first_of, *self._symlinks, *self._nodes])
        for name in entries:
            if name in self._symlinks:
                writer.add_symlink(name, self._symlinks[name])
            elif name in self._nodes:
                mode, major, minor = self._nodes[name]
                writer.add_char_device(name, major, minor, mode)
            else:
                content = self._contents[name]
                if content.host is not None:
                    writer.add_file_from(name, content.host, content.mode, first_of[name])
                else:
                    writer.add_file(name, content.data or b"", content.mode, first_of[name])
        writer.close()


def _label(content: _Content) -> str:
    return str(content.host) if content.host is not None else "generated content"
