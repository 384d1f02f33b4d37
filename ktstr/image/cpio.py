"""A streaming writer for cpio "newc" archives, the format the kernel unpacks as initramfs.

Every entry is owned by root (uid 0, gid 0) and dated mtime 0, and inode numbers are
handed out in order, so the same calls produce the same bytes on any host. Parent
directories are created on demand (mode 0755) because the kernel's unpacker does not
create them. A file stored under several names is written once: the first entry carries
the data and the others are hard links to it (same inode, ``nlink`` = number of names),
which both the kernel and GNU cpio understand.

    with open(out, "wb") as stream:
        with CpioWriter(stream) as cpio:
            cpio.add_dir("/etc")
            cpio.add_file("/init", b"#!/bin/sh\\n", mode=0o755)
            cpio.add_symlink("/bin/sh", "busybox")
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Protocol

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError

log = logging.getLogger(__name__)

MAGIC = b"070701"
HEADER_SIZE = 110
TRAILER = "TRAILER!!!"
_CHUNK = 1 << 20


class Sink(Protocol):
    """Anything with ``write(bytes)``: a file, a BytesIO, a GzipFile, a pipe."""

    def write(self, data: bytes, /) -> object: ...


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def archive_name(guest_path: str) -> str:
    """The name stored in the archive: a normalized relative path (``/etc/x`` → ``etc/x``).

    Rejects empty names, ``..`` components and the root itself.
    """
    parts = [p for p in PurePosixPath(guest_path).parts if p not in ("/", ".")]
    if not parts:
        raise UserError(f"cpio entry {guest_path!r} names the root; give a path below /")
    if ".." in parts:
        raise UserError(f"cpio entry {guest_path!r} contains '..'; give a plain absolute path")
    if any("\0" in p for p in parts):
        raise UserError(f"cpio entry {guest_path!r} contains a NUL byte")
    return "/".join(parts)


def header(
    *,
    ino: int,
    mode: int,
    nlink: int,
    size: int,
    name: str,
    rdevmajor: int = 0,
    rdevminor: int = 0,
) -> bytes:
    """One newc header plus its NUL-terminated name, padded to 4 bytes."""
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevmajor, rdevminor, len(encoded), 0)
    if size >= 1 << 32:
        raise UserError(f"cpio entry {name!r} is {size} bytes; newc holds at most 4 GiB - 1")
    head = MAGIC + b"".join(b"%08X" % f for f in fields)
    return head + encoded + b"\0" * _pad4(HEADER_SIZE + len(encoded))


class CpioWriter:
    """Writes entries to a binary stream; ``close()`` (or leaving the ``with``) ends it."""

    def __init__(self, stream: Sink, dir_modes: Mapping[str, int] | None = None) -> None:
        """``dir_modes`` gives modes for parent directories created on demand (by archive
        name, e.g. ``{"tmp": 0o1777}``); others get 0755."""
        self._out = stream
        self._dir_modes = dict(dir_modes or {})
        self._next_ino = 1
        self._names: set[str] = set()
        self._dirs: set[str] = set()
        self._closed = False
        self.bytes_written = 0

    def __enter__(self) -> CpioWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()

    # -- entries ---------------------------------------------------------------------

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        name = archive_name(path)
        if name in self._dirs:
            return
        self._parents(name)
        self._entry(name, stat.S_IFDIR | (mode & 0o7777), nlink=2)
        self._dirs.add(name)

    def add_file(
        self, path: str, data: bytes, mode: int = 0o644, links: Sequence[str] = ()
    ) -> None:
        """A regular file from bytes; ``links`` are further names for the same file."""
        names = self._link_names(path, links)
        self._parents(names[0])
        ino = self._entry(
            names[0], stat.S_IFREG | (mode & 0o7777), nlink=len(names), size=len(data)
        )
        self._write(data)
        self._write(b"\0" * _pad4(len(data)))
        self._links(names[1:], ino, mode, len(names))

    def add_file_from(
        self, path: str, source: Path, mode: int | None = None, links: Sequence[str] = ()
    ) -> None:
        """A regular file streamed from a host path; mode defaults to 0755/0644 by its x bit."""
        names = self._link_names(path, links)
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed below, streamed in chunks
        except IsADirectoryError as exc:
            raise UserError(f"{source} is not a regular file; cannot store it at {path!r}") from exc
        except OSError as exc:
            raise InfraError(f"cannot read {source} for cpio entry {path!r}: {exc}") from exc
        with handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise UserError(f"{source} is not a regular file; cannot store it at {path!r}")
            if mode is None:
                mode = 0o755 if st.st_mode & 0o111 else 0o644
            self._parents(names[0])
            ino = self._entry(
                names[0], stat.S_IFREG | (mode & 0o7777), nlink=len(names), size=st.st_size
            )
            copied = 0
            while chunk := handle.read(min(_CHUNK, st.st_size - copied)):
                self._write(chunk)
                copied += len(chunk)
                if copied >= st.st_size:
                    break
        if copied != st.st_size:
            raise InfraError(
                f"{source} changed while it was archived ({copied} of {st.st_size} bytes read)"
            )
        self._write(b"\0" * _pad4(st.st_size))
        self._links(names[1:], ino, mode, len(names))

    def add_symlink(self, path: str, target: str, mode: int = 0o777) -> None:
        if not target:
            raise UserError(f"symlink {path!r} has an empty target")
        name = archive_name(path)
        self._parents(name)
        data = target.encode()
        self._entry(name, stat.S_IFLNK | (mode & 0o7777), nlink=1, size=len(data))
        self._write(data + b"\0" * _pad4(len(data)))

    def add_char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        name = archive_name(path)
        self._parents(name)
        self._entry(name, stat.S_IFCHR | (mode & 0o7777), nlink=1, rdev=(major, minor))

    def close(self) -> None:
        """Write the trailer. The stream itself stays open (its owner closes it)."""
        if self._closed:
            return
        self._write(header(ino=0, mode=0, nlink=1, size=0, name=TRAILER))
        self._closed = True

    # -- internals -------------------------------------------------------------------

    def _link_names(self, path: str, links: Sequence[str]) -> list[str]:
        names = [archive_name(path), *(archive_name(p) for p in links)]
        if len(set(names)) != len(names):
            raise UserError(f"file {path!r} lists the same name twice among its links {links}")
        return names

    def _links(self, names: Sequence[str], ino: int, mode: int, nlink: int) -> None:
        for name in names:
            self._parents(name)
            self._entry(name, stat.S_IFREG | (mode & 0o7777), nlink=nlink, size=0, ino=ino)

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent not in self._dirs:
                mode = self._dir_modes.get(parent, 0o755)
                self._entry(parent, stat.S_IFDIR | mode, nlink=2)
                self._dirs.add(parent)

    def _entry(
        self,
        name: str,
        mode: int,
        *,
        nlink: int,
        size: int = 0,
        ino: int | None = None,
        rdev: tuple[int, int] = (0, 0),
    ) -> int:
        if self._closed:
            raise InfraError(f"cpio archive already closed; cannot add {name!r}")
        if name in self._names:
            raise UserError(f"cpio entry /{name} is added twice; each guest path needs one source")
        self._names.add(name)
        if ino is None:
            ino = self._next_ino
            self._next_ino += 1
        self._write(
            header(
                ino=ino,
                mode=mode,
                nlink=nlink,
                size=size,
                name=name,
                rdevmajor=rdev[0],
                rdevminor=rdev[1],
            )
        )
        return ino

    def _write(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.bytes_written += len(data)


class Entry(Frozen):
    """One entry read back from a newc archive (for inspection and tests)."""

    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    rdev: tuple[int, int]
    data: bytes


def read_entries(data: bytes) -> list[Entry]:
    """Parse one uncompressed newc archive (up to its trailer) into entries."""
    entries: list[Entry] = []
    pos = 0
    while True:
        if data[pos : pos + 6] != MAGIC:
            raise UserError(f"no newc header at offset {pos}; not an uncompressed newc archive")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, size = fields[:7]
        namesize = fields[11]
        name_at = pos + HEADER_SIZE
        name = data[name_at : name_at + namesize - 1].decode()
        data_at = name_at + namesize + _pad4(HEADER_SIZE + namesize)
        if name == TRAILER:
            return entries
        entries.append(
            Entry(
                name=name,
                ino=ino,
                mode=mode,
                uid=uid,
                gid=gid,
                nlink=nlink,
                mtime=mtime,
                rdev=(fields[9], fields[10]),
                data=data[data_at : data_at + size],
            )
        )
        pos = data_at + size + _pad4(size)
