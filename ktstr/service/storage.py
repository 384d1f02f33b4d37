"""What the service keeps under ``--storage``: uploaded files (content-addressed by
SHA-256) and every job's result JSON and log.

Layout::

    STORAGE/files/ab/abcdef...          an uploaded file, named by its SHA-256
    STORAGE/results/2026-12-01.jsonl    the results of the jobs that ended that day (UTC),
                                        one line each: {"record": ..., "console_log": ...}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ktstr.service.errors import ServiceError

#: how a plan refers to a file uploaded with it: ``upload:NAME``
UPLOAD_PREFIX = "upload:"
#: the longest upload name
MAX_NAME = 200
_NAME_OK = re.compile(r"^[A-Za-z0-9._+-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class BadUploadName(ServiceError):
    status_code = 400


class UploadTooLarge(ServiceError):
    status_code = 413


def check_upload_name(name: str) -> str:
    """``name`` if it is a safe flat file name, else ``BadUploadName`` saying why (pure).

    Names land in the worker's work directory as ``files/NAME``: no directories, no
    ``..``, no absolute paths, no NULs or control characters."""
    if not name:
        raise BadUploadName("an upload needs a file name")
    if "\x00" in name:
        raise BadUploadName(f"upload name {name!r} contains a NUL byte")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BadUploadName(f"upload name {name!r} is an absolute path; give a plain "
                            "file name")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise BadUploadName(f"upload name {name!r} contains a path; give a plain file "
                            "name such as bzImage")
    if len(name) > MAX_NAME:
        raise BadUploadName(f"upload name {name[:40]!r}... is longer than {MAX_NAME} "
                            "characters")
    if not _NAME_OK.match(name) or name.startswith("."):
        raise BadUploadName(f"upload name {name!r} may use only letters, digits and "
                            "._+- (not starting with a dot)")
    return name


def upload_name(ref: str) -> str | None:
    """The upload a plan value refers to (``upload:NAME`` -> NAME), else None (pure)."""
    return ref[len(UPLOAD_PREFIX):] if ref.startswith(UPLOAD_PREFIX) else None


def plan_upload_refs(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, upload name) for every ``upload:NAME`` value of a plan (pure)."""
    refs: list[tuple[str, str]] = []
    for r, run in enumerate(document.get("runs") or []):
        if not isinstance(run, dict):
            continue
        for key in ("kernels", "schedulers"):
            for i, value in enumerate(run.get(key) or []):
                name = upload_name(value) if isinstance(value, str) else None
                if name is not None:
                    refs.append((f"runs[{r}].{key}[{i}]", name))
    for i, value in enumerate(document.get("files") or []):
        name = upload_name(value) if isinstance(value, str) else value
        if isinstance(name, str):
            refs.append((f"files[{i}]", name))
    return refs


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class FileStore:
    """Content-addressed files under ``root``; a file is stored once however often it
    is uploaded."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise BadUploadName(f"{sha256[:80]!r} is not a SHA-256 (64 lower-case hex "
                                "digits)")
        return self.root / sha256[:2] / sha256

    def put(self, name: str, source: Readable, limit: int) -> tuple[str, int]:
        """Copy ``source`` in, refusing more than ``limit`` bytes. (sha256, size)."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLarge(f"upload {name!r} is larger than the limit of "
                                             f"{limit} bytes (--max-upload)")
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            final = self.path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            return sha, size
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def keep_job_result(root: Path, finished_at: float, record_json: str, log: str) -> Path:
    """Append a job's result record (its JSON, already serialised) and console log as one
    line to the file of the day it ended (UTC) under ``root``; returns that file.

    One line in a file per day, not a directory per job with two files in it: creating
    those four inodes per result was most of the service's CPU in the dispatch benchmark
    (ext4 scans its inode bitmaps past recently deleted inodes for every one). An
    appended line costs an open, one write and a close; ``O_APPEND`` keeps the lines of
    concurrent writers (``--workers N``) apart."""
    path = os.path.join(root, time.strftime("%Y-%m-%d.jsonl", time.gmtime(finished_at)))
    line = b'{"record":%s,"console_log":%s}\n' % (record_json.encode(),
                                                   json.dumps(log).encode())
    try:
        fd = os.open(path, _APPEND, 0o666)  # as open(): the umask decides
    except FileNotFoundError:  # the first result under this root
        os.makedirs(root, exist_ok=True)
        fd = os.open(path, _APPEND, 0o666)
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return Path(path)


_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def kept_results(root: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """Every kept result under ``root`` as (record, console log), oldest day first; a
    line cut short (the disk filled up, the machine lost power) is skipped."""
    for day in sorted(root.glob("*.jsonl")):
        with day.open("rb") as lines:
            for line in lines:
                try:
                    kept = json.loads(line)
                except ValueError:
                    continue
                yield kept["record"], kept["console_log"]


def missing_uploads(refs: Iterable[tuple[str, str]], have: Iterable[str]) -> list[str]:
    """Problems for references to files not uploaded (pure)."""
    got = set(have)
    return [f"{path}: refers to {UPLOAD_PREFIX}{name}, which was not uploaded with the plan"
            for path, name in refs if name not in got]
