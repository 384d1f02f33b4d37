"""Work a module's tests share, done once per pytest run however xdist splits them.

A module-scoped fixture runs once per xdist *worker*: when the tests that use it land on
two workers, its work runs twice, at the same time, on the same cores. pytest-xdist's
``--dist loadgroup`` would keep them together, but it marks the group by rewriting
``item._nodeid``, which pytest 9 no longer reads (nodeids come from ``item._id``), so
grouping silently does nothing here. Instead the first worker to ask does the work while
holding a lock in the run's shared temporary directory; the others block on that lock
(held no longer than the work's own timeout; the kernel frees it if the holder dies) and
then read what the work left.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def run_once(tmp_path_factory: pytest.TempPathFactory, name: str,
             work: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """``work(directory)`` once per pytest run; returns the directory and ``work``'s
    answer (JSON data), to every worker that asks."""
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's basetemp is <run>/popen-gwN: the run's directory is shared
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    where = shared / name
    done = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            shutil.rmtree(where, ignore_errors=True)  # a holder that died mid-way
            where.mkdir()
            try:
                answer = {"answer": work(where)}
            except BaseException as exc:  # the others fail with it instead of retrying
                done.write_text(json.dumps({"failed": f"{type(exc).__name__}: {exc}"}))
                raise
            done.write_text(json.dumps(answer))
        data = json.loads(done.read_text())
    assert "failed" not in data, f"{name} failed in another xdist worker: {data['failed']}"
    assert isinstance(data["answer"], dict)
    return where, data["answer"]
