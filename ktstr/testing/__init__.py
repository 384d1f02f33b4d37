"""Fakes and harnesses shipped with ktstr, for its own tests and for yours.

- ``ScriptedRunner`` (``runner``): a ``CellRunner`` that waits and returns a scripted
  verdict instead of booting a VM (a worker's ``--runner scripted``).
- ``ServiceThread`` (``service``): the scheduler service on 127.0.0.1 in a thread.
- ``TemporaryPostgres`` (``postgres``): a throwaway PostgreSQL cluster.
- ``FakeArchive`` and fake kernel packages (``kernel``): kernels without a network.
- ``assert_golden``, ``check_shell_syntax`` (``golden``): checks of rendered files.

A light leaf: importing this package loads none of the service's dependencies (FastAPI,
SQLAlchemy, uvicorn) nor ``ktstr.service``; the harnesses import them when they start.
Production code never imports it at module level; the one lazy import is the worker's
``--runner scripted`` (``ktstr.worker.runner.make_runner``).
"""

from __future__ import annotations

from ktstr.testing.golden import SHELLS, UPDATE_ENV, assert_golden, check_shell_syntax
from ktstr.testing.kernel import (
    EEVDF_CONFIG,
    SCHED_EXT_CONFIG,
    FakeArchive,
    build_deb,
    fake_bzimage,
    image_kernel_debs,
    split_kernel_debs,
)
from ktstr.testing.postgres import TemporaryPostgres, find_server_bin_dir
from ktstr.testing.runner import SCRIPT_ENV, RunnerScript, Script, ScriptedRunner
from ktstr.testing.service import ServiceThread

__all__ = [
    "EEVDF_CONFIG",
    "SCHED_EXT_CONFIG",
    "SCRIPT_ENV",
    "SHELLS",
    "UPDATE_ENV",
    "FakeArchive",
    "RunnerScript",
    "Script",
    "ScriptedRunner",
    "ServiceThread",
    "TemporaryPostgres",
    "assert_golden",
    "build_deb",
    "check_shell_syntax",
    "fake_bzimage",
    "find_server_bin_dir",
    "image_kernel_debs",
    "split_kernel_debs",
]
