"""Run directories: short paths (unix sockets need < 108 bytes), kept on failure."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def make_run_dir(prefix: str = "ktstr-") -> Path:
    base = os.environ.get("KTSTR_RUN_DIR", "/tmp")
    Path(base).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if len(str(path / "r.sock")) > 100:
        raise ValueError(f"run directory {path} is too long for a unix socket; "
                         "set KTSTR_RUN_DIR to a short path such as /tmp")
    return path


def finish_run_dir(path: Path, *, keep: bool) -> bool:
    """Remove the run directory unless it must be kept; returns whether it was kept."""
    if keep:
        return True
    shutil.rmtree(path, ignore_errors=True)
    return False
