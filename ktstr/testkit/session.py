"""Per-session settings of the pytest plugin (one per pytest process / xdist worker)."""

from __future__ import annotations

from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.declare.topology import HostCapacity
from ktstr.vm.host import AccelRequest


class KtstrSession(Frozen):
    kernels: tuple[str, ...] = ()
    gauntlet: bool = False
    accel: AccelRequest = AccelRequest.AUTO
    keep: bool = False
    results_dir: Path
    host: HostCapacity
    worker_id: str = "master"
