"""Results a worker has finished but not yet reported, kept on disk.

A result is written (atomically) before it is uploaded and removed after the service
accepted or definitively refused it, so a worker restart does not lose it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.service.schemas import JobResultIn

log = logging.getLogger(__name__)


class Pending(Frozen):
    job_id: int
    result: JobResultIn


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: int, attempt: int) -> Path:
        return self.directory / f"job-{job_id}-attempt-{attempt}.json"

    def save(self, pending: Pending) -> Path:
        path = self._path(pending.job_id, pending.result.attempt)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(pending.model_dump_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def remove(self, pending: Pending) -> None:
        self._path(pending.job_id, pending.result.attempt).unlink(missing_ok=True)

    def pending(self) -> Iterator[Pending]:
        for path in sorted(self.directory.glob("job-*.json")):
            try:
                yield Pending.model_validate_json(path.read_text())
            except ValueError as exc:
                log.warning("dropping unreadable spooled result %s: %s", path, exc)
                path.unlink(missing_ok=True)
