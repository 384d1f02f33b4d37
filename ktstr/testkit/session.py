"""The pytest plugin's options, typed, and the per-session settings built from them.

``KtstrOptions`` holds the ``--ktstr-*`` options. ``ktstr.pytest_plugin`` builds it once
per pytest process in ``pytest_configure`` and keeps it on the config. Each
pytest-xdist worker receives the same command-line options and builds its own copy, so
nothing travels through the environment. ``KtstrSession`` (one per pytest process /
xdist worker) adds what the host and the worker contribute; ``Ctx.request`` carries
its values into every ``RunRequest``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.declare.topology import HostCapacity
from ktstr.vm.host import AccelRequest


class KtstrOptions(Frozen):
    """The ``--ktstr-*`` options of one pytest run."""

    #: ``--ktstr-kernel`` (repeatable); none: ``$KTSTR_KERNEL``, else the newest cached
    kernels: tuple[str, ...] = ()
    #: ``--ktstr-gauntlet``
    gauntlet: bool = False
    #: ``--ktstr-accel``
    accel: AccelRequest = AccelRequest.AUTO
    #: ``--ktstr-keep``
    keep: bool = False
    #: not ``--ktstr-no-repro``
    repro: bool = True
    #: ``--ktstr-results``, made absolute
    results_dir: Path
    #: ``--ktstr-cold-boot``: boot every VM, restore and save no snapshot
    cold_boot: bool = False
    #: ``--ktstr-cpu-budget``; None: ``$KTSTR_CPU_BUDGET``, else the host's CPUs
    cpu_budget: int | None = Field(None, ge=1)


class KtstrSession(KtstrOptions):
    """The options, plus the host's capacity and this process's xdist worker id."""

    host: HostCapacity
    worker_id: str = "master"

    @classmethod
    def from_options(cls, options: KtstrOptions, *, host: HostCapacity,
                     worker_id: str = "master") -> KtstrSession:
        return cls(**options.model_dump(), host=host, worker_id=worker_id)
