"""Assemble the guest image for a run: what goes in the cached base, what per run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ktstr.declare.payload import Payload
from ktstr.declare.scheduler import INCLUDE_DIR, Scheduler
from ktstr.errors import UserError
from ktstr.image import builder
from ktstr.image.elf import is_elf
from ktstr.image.templates import render
from ktstr.run.params import sched_guest_path

RESULTS_PORT = "ktstr.results"


def init_script() -> str:
    return render("init.sh.j2", flavour="ktstr", results_port=RESULTS_PORT)


def find_tool(name: str) -> Path:
    found = shutil.which(name)
    if not found:
        raise UserError(
            f"workload binary {name!r} not found on the host PATH: install it, or run "
            "scripts/setup.sh (installs stress-ng and rt-tests)"
        )
    return Path(found)


def base_spec(
    *,
    scheduler: Scheduler,
    scheduler_binary: Path | None,
    tools: Sequence[str] = (),
    include_files: Sequence[Path] = (),
    payload: Payload | None = None,
    extra_binaries: Mapping[str, Path] | None = None,
) -> builder.ImageSpec:
    """The cacheable part: busybox, init, scheduler binary, workload tools, includes.

    ELF executables (the scheduler, ``include_files`` that are executables) come with
    their shared-library closure; scripts and data files are copied as they are.
    Included executables land in ``/usr/bin``, other files in ``/include-files``.
    ``extra_binaries`` (guest path -> host file) are added as they are (e.g. the
    scenario worker, a static binary).
    """
    binaries: dict[str, Path] = {}
    files: dict[str, Path] = {}
    guest = sched_guest_path(scheduler)
    if scheduler_binary is not None and guest is not None:
        (binaries if is_elf(scheduler_binary) else files)[guest] = scheduler_binary
    for tool in tools:
        path = find_tool(tool)
        binaries[f"/usr/bin/{tool}"] = path
    if scheduler.config_file:
        cfg = Path(scheduler.config_file).expanduser()
        if not cfg.is_file():
            raise UserError(
                f"scheduler {scheduler.name!r}: config_file {scheduler.config_file!r} does not "
                "exist (paths are relative to the current directory)"
            )
        files[f"{INCLUDE_DIR}/{os.path.basename(scheduler.config_file)}"] = cfg
    if payload is not None:
        exe = payload.executable or payload.name
        host = Path(exe) if exe.startswith("/") else find_tool(exe)
        (binaries if is_elf(host) else files)[f"/usr/bin/{host.name}"] = host
        for inc_name in payload.include_files:
            inc_path = Path(inc_name).expanduser()
            if not inc_path.is_file():
                raise UserError(f"payload {payload.name!r}: include file {inc_name!r} does "
                                "not exist")
            files[f"{INCLUDE_DIR}/{inc_path.name}"] = inc_path
    for inc in include_files:
        if not inc.is_file():
            raise UserError(f"include file {str(inc)!r} does not exist")
        if os.access(inc, os.X_OK):
            (binaries if is_elf(inc) else files)[f"/usr/bin/{inc.name}"] = inc
        else:
            files[f"{INCLUDE_DIR}/{inc.name}"] = inc
    if extra_binaries:
        binaries.update(extra_binaries)
    return builder.ImageSpec(init=init_script(), binaries=binaries, files=files)


def make_initrd(spec: builder.ImageSpec, segment_files: dict[str, bytes], run_dir: Path) -> Path:
    base = builder.build_base(spec)
    segment = builder.run_segment(segment_files)
    return builder.compose(base, segment, run_dir / "initrd.img")
