"""The kernel cache: one directory per kernel under ``paths.kernels_dir()``.

::

    kernels/
      7.2.13+deb14-amd64/        key = the kernel release for Debian kernels
        metadata.json            a CachedKernel
        vmlinuz  config  System.map
        modules/                 the lib/modules/RELEASE tree (kernel/**.ko.xz, modules.*)
      .locks/KEY.lock            fcntl locks, one per key
      .tmp-KEY-*/                entries being built (ignored; removed by `kernel clean`)

An entry is installed by renaming a finished staging directory, under the key's lock, so
readers see either nothing or a complete entry. ``verify`` re-checks the files and the
image's sha256; a corrupt entry is reported and never returned by ``get``/``entries``.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from pydantic import Field, ValidationError

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.image.cache import write_atomic
from ktstr.kernel.config import ConfigFacts
from ktstr.kernel.id import sanitize_label, version_key
from ktstr.kernel.locking import (
    STAGING_PREFIX,
    TRASH_PREFIX,
    dir_size,
    discard_dir,
    file_lock,
    install_dir,
    is_locked,
    staging_dir,
)

log = logging.getLogger(__name__)

METADATA = "metadata.json"
FORMAT = 1


class KernelSource(enum.StrEnum):
    DEBIAN = "debian"
    FILE = "file"
    TREE = "tree"


class EntryState(enum.StrEnum):
    OK = "ok"
    CORRUPT = "corrupt"


class CachedKernel(Frozen):
    """A usable kernel: the contents of ``metadata.json`` plus where it lives.

    File fields are relative to ``entry_dir``; use the ``*_path`` properties.
    """

    format: int = FORMAT
    key: str
    version: str
    release: str | None = None
    debian_version: str | None = None
    suite: str | None = None
    source: KernelSource
    flavour: str | None = None
    origin: str | None = None
    packages: list[str] = []
    image: str
    config: str | None = None
    system_map: str | None = None
    modules: str | None = None
    image_sha256: str
    config_facts: ConfigFacts = ConfigFacts()
    sched_ext: bool
    size_bytes: int = 0
    fetched_at: dt.datetime
    entry_dir: Path = Field(exclude=True)
    in_cache: bool = Field(default=True, exclude=True)

    @property
    def image_path(self) -> Path:
        return self.entry_dir / self.image

    @property
    def config_path(self) -> Path | None:
        return self.entry_dir / self.config if self.config else None

    @property
    def system_map_path(self) -> Path | None:
        return self.entry_dir / self.system_map if self.system_map else None

    @property
    def modules_dir(self) -> Path | None:
        """The ``lib/modules/RELEASE`` tree (``kernel/``, ``modules.builtin`` ...)."""
        return self.entry_dir / self.modules if self.modules else None

    @property
    def sort_key(self) -> tuple[tuple[int, int, int, int, int], str]:
        return version_key(self.version), self.key

    def summary(self) -> dict[str, object]:
        """The JSON a listing shows (metadata plus absolute paths)."""
        data = self.model_dump(mode="json")
        data.update(entry_dir=str(self.entry_dir), image_path=str(self.image_path),
                    config_path=str(self.config_path) if self.config_path else None,
                    modules_dir=str(self.modules_dir) if self.modules_dir else None)
        return data


class EntryStatus(Frozen):
    key: str
    path: Path
    state: EntryState
    problems: list[str] = []
    kernel: CachedKernel | None = None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: image digests this process already computed, by (path, inode, size, mtime): every
#: lookup verifies every entry, and a test session resolves its kernel per test
_DIGESTS: dict[tuple[str, int, int, int], str] = {}

def _memo_path(image: Path) -> Path:
    """Beside an image: the digest ``image_digest`` computed and the file identity
    (device, inode, size, mtime_ns) it was computed at, so later processes skip hashing."""
    return image.with_name(f".{image.name}.sha256.json")


def image_digest(path: Path) -> str:
    """``sha256_file`` of a kernel image, computed again only when the file changed: by
    this process (``_DIGESTS``) or by any earlier one (the memo beside the image). Every
    command resolves its kernel through ``entries``, which verifies every cached entry;
    without the memo each of them hashed every cached kernel (~30 ms apiece). A file
    rewritten in place with its size and mtime kept is not noticed, as with make."""
    st = path.stat()
    ident = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if (known := _DIGESTS.get(key)) is not None:
        return known
    memo = _memo_path(path)
    try:
        recorded = json.loads(memo.read_text())
        if recorded.get("identity") == ident and isinstance(recorded.get("sha256"), str):
            known = str(recorded["sha256"])
    except (OSError, ValueError, AttributeError):
        known = None
    if known is None:
        known = sha256_file(path)
        try:  # the cache may be read-only to this user: then every process hashes
            # a temporary file of its own per write: threads of one process may hash at once
            write_atomic(memo, json.dumps({"identity": ident, "sha256": known}).encode(),
                         durable=False)
        except OSError as exc:
            log.debug("image digest not remembered beside %s: %s", path, exc)
    _DIGESTS[key] = known
    return known


def load_entry(entry: Path) -> EntryStatus:
    """Read and verify one entry directory."""
    key = entry.name
    meta = entry / METADATA
    try:
        raw = json.loads(meta.read_text())
        kernel = CachedKernel.model_validate({**raw, "entry_dir": entry})
    except (OSError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        return EntryStatus(key=key, path=entry, state=EntryState.CORRUPT,
                           problems=[f"bad or missing {METADATA}: {first}"])
    problems = verify(kernel)
    if kernel.key != key:
        problems.append(f"metadata key {kernel.key!r} does not match directory {key!r}")
    state = EntryState.CORRUPT if problems else EntryState.OK
    return EntryStatus(key=key, path=entry, state=state, problems=problems, kernel=kernel)


def verify(kernel: CachedKernel) -> list[str]:
    """What is wrong with a kernel's files (empty when it is usable)."""
    problems = []
    for label, p in (("image", kernel.image_path), ("config", kernel.config_path),
                     ("System.map", kernel.system_map_path)):
        if p is not None and not p.is_file():
            problems.append(f"{label} missing: {p}")
    if kernel.modules_dir is not None and not kernel.modules_dir.is_dir():
        problems.append(f"module tree missing: {kernel.modules_dir}")
    if kernel.image_path.is_file() and image_digest(kernel.image_path) != kernel.image_sha256:
        problems.append(f"image sha256 mismatch: {kernel.image_path}")
    return problems


def write_metadata(kernel: CachedKernel, directory: Path) -> None:
    (directory / METADATA).write_text(kernel.model_dump_json(indent=2) + "\n")


class KernelCache:
    """The kernel cache directory: lookup, verification, locked atomic installs."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else paths.kernels_dir()

    def path_for(self, key: str) -> Path:
        return self.root / sanitize_label(key)

    def lock(self, key: str) -> AbstractContextManager[None]:
        return file_lock(self.root / ".locks" / f"{sanitize_label(key)}.lock", what=key)

    def scan(self) -> list[EntryStatus]:
        """Every entry, verified, sorted by version."""
        if not self.root.is_dir():
            return []
        out = [load_entry(p) for p in self.root.iterdir()
               if p.is_dir() and not p.name.startswith(".")]
        return sorted(out, key=lambda s: (s.kernel.sort_key if s.kernel else
                                          ((0, 0, 0, 0, 0), s.key)))

    def entries(self) -> list[CachedKernel]:
        """Usable entries, oldest version first; corrupt ones are logged and skipped."""
        out = []
        for status in self.scan():
            if status.state is EntryState.OK and status.kernel is not None:
                out.append(status.kernel)
            else:
                log.warning("corrupt kernel cache entry %s: %s (run `ktstr kernel clean "
                            "--corrupt-only`)", status.path, "; ".join(status.problems))
        return out

    def status(self, key: str) -> EntryStatus | None:
        entry = self.path_for(key)
        return load_entry(entry) if entry.is_dir() else None

    def get(self, key: str) -> CachedKernel | None:
        status = self.status(key)
        if status is None:
            return None
        if status.state is not EntryState.OK:
            log.warning("kernel cache entry %s is corrupt: %s", status.path,
                        "; ".join(status.problems))
            return None
        return status.kernel

    def ensure(self, key: str, build: Callable[[Path], CachedKernel]) -> CachedKernel:
        """The entry ``key``, building it with ``build(staging_dir)`` if missing or corrupt.

        ``build`` fills the staging directory and returns the metadata; the directory is
        renamed into place under the key's lock, so concurrent callers build it once.
        """
        found = self.get(key)
        if found is not None:
            return found
        with self.lock(key):
            status = self.status(key)
            if status is not None and status.state is EntryState.OK and status.kernel:
                return status.kernel
            if status is not None:
                log.warning("replacing corrupt kernel cache entry %s: %s", status.path,
                            "; ".join(status.problems))
            with staging_dir(self.root, sanitize_label(key)) as tmp:
                kernel = build(tmp)
                write_metadata(kernel, tmp)
                install_dir(tmp, self.path_for(key))
        result = self.get(key)
        if result is None:
            raise RuntimeError(f"kernel cache entry {key} vanished right after install")
        return result

    def remove(self, key: str) -> None:
        with self.lock(key):
            entry = self.path_for(key)
            if entry.exists():
                discard_dir(entry)

    def stale_staging(self) -> Iterator[Path]:
        """Leftovers of interrupted installs (nobody holds their key's lock)."""
        if not self.root.is_dir():
            return
        for p in self.root.iterdir():
            if p.name.startswith(TRASH_PREFIX):
                yield p
            elif p.name.startswith(STAGING_PREFIX):
                key = p.name[len(STAGING_PREFIX):].rsplit("-", 1)[0]
                if not is_locked(self.root / ".locks" / f"{key}.lock"):
                    yield p


def finish_entry(directory: Path, **fields: object) -> CachedKernel:
    """Build the ``CachedKernel`` of a filled staging directory (sha, facts, size unless
    ``size_bytes`` is given)."""
    image = directory / str(fields["image"])
    config_name = fields.get("config")
    facts = ConfigFacts()
    if isinstance(config_name, str) and (directory / config_name).is_file():
        facts = ConfigFacts.from_text((directory / config_name).read_text(errors="replace"))
    return CachedKernel.model_validate({
        **fields,
        "image_sha256": sha256_file(image),
        "config_facts": facts,
        "sched_ext": facts.sched_ext,
        "size_bytes": fields.get("size_bytes", dir_size(directory)),
        "fetched_at": dt.datetime.now(dt.UTC),
        "entry_dir": directory,
    })
