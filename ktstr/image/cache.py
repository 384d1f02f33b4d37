"""Cache plumbing for images: file identities, remembered content hashes, locks, atomic files.

A host file's *identity* is (device, inode, size, mtime_ns) of what its path points to
now; a file whose identity is unchanged is taken to have unchanged content, so its
SHA-256 is computed once ("on first sight") and remembered in ``file-hashes.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from ktstr.errors import InfraError, UserError

log = logging.getLogger(__name__)

Identity = tuple[int, int, int, int]
_HASHES = "file-hashes.json"


def identity(path: Path | str) -> Identity | None:
    """(dev, ino, size, mtime_ns) of the file ``path`` points to, or None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def identities_match(recorded: Mapping[str, list[int]]) -> bool:
    """True when every recorded path still has the recorded identity (stat only);
    an empty identity records a file that was absent and must still be."""
    for path, ident in recorded.items():
        now = identity(path)
        if (list(now) if now else []) != ident:
            return False
    return True


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise UserError(f"cannot read {path} for the image: {exc}") from exc
    return digest.hexdigest()


class HashStore:
    """Content hashes by path, valid while the file's identity is unchanged."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / _HASHES
        self._entries: dict[str, list[object]] = {}
        self._dirty = False
        with contextlib.suppress(FileNotFoundError, ValueError):
            loaded = json.loads(self._path.read_text())
            if isinstance(loaded, dict):
                self._entries = loaded

    def digest(self, path: Path | str) -> tuple[str, Identity]:
        """The file's SHA-256 (remembered or computed) and its identity."""
        key = str(path)
        ident = identity(key)
        if ident is None:
            raise UserError(f"{key} does not exist; it is needed for the image")
        known = self._entries.get(key)
        if known and known[:4] == list(ident) and isinstance(known[4], str):
            return known[4], ident
        digest = sha256_file(key)
        if identity(key) != ident:
            raise InfraError(f"{key} changed while it was hashed; retry when it is stable")
        self._entries[key] = [*ident, digest]
        self._dirty = True
        return digest, ident

    def save(self) -> None:
        if self._dirty:
            write_atomic(self._path, json.dumps(self._entries, sort_keys=True).encode())
            self._dirty = False


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_output(final: Path, *, durable: bool = True) -> Iterator[IO[bytes]]:
    """A temporary file beside ``final`` that replaces it only if the block succeeds.
    ``durable=False`` skips the fsync: for memos, which a crash only makes recomputed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(final: Path, data: bytes, *, durable: bool = True) -> None:
    with atomic_output(final, durable=durable) as handle:
        handle.write(data)


def read_json(path: Path) -> dict[str, object] | None:
    try:
        loaded = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None
