"""Pure: the per-run files the guest init reads from ``/ktstr/`` (the run segment)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from ktstr.declare.scheduler import Scheduler
from ktstr.declare.settings import Sysctl
from ktstr.declare.spec import SpecKind

SCHED_GUEST_DIR = "/sched"


def sched_kind(scheduler: Scheduler) -> str:
    return {
        SpecKind.EEVDF: "eevdf",
        SpecKind.KERNEL_BUILTIN: "builtin",
        SpecKind.DISCOVER: "binary",
        SpecKind.PATH: "binary",
    }[scheduler.binary.kind]


def sched_guest_path(scheduler: Scheduler) -> str | None:
    name = scheduler.binary.binary_name
    return f"{SCHED_GUEST_DIR}/{name}" if name else None


def params_sh(values: Mapping[str, str | int | float]) -> str:
    """``KEY='value'`` lines the init sources; values are shell-quoted."""
    return "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in values.items())


def sysctls_file(sysctls: Sequence[Sysctl]) -> str:
    """``/proc/sys/PATH VALUE`` lines, applied in order (the last write wins)."""
    return "".join(f"{s.proc_path} {s.value}\n" for s in sysctls)


def args_file(args: Sequence[str]) -> str:
    for a in args:
        if "\n" in a:
            raise ValueError(f"a scheduler argument must not contain a newline: {a!r}")
    return "".join(f"{a}\n" for a in args)


def run_files(
    *,
    mode: str,
    scheduler: Scheduler,
    sched_args: Sequence[str],
    workload: str,
    workers: int,
    duration_s: float,
    attach_timeout_s: float,
    stop_timeout_s: float,
    inline_config: str | None = None,
    report_topology: bool = True,
    payload_argv: Sequence[str] | None = None,
    payload_timeout_s: float = 0,
    scenario_files: Mapping[str, bytes] | None = None,
) -> dict[str, bytes]:
    """Guest path -> content for the run segment."""
    params: dict[str, str | int | float] = {
        "KTSTR_MODE": mode,
        "KTSTR_REPORT_TOPOLOGY": 1 if report_topology else 0,
        "KTSTR_SCHED_KIND": sched_kind(scheduler),
        "KTSTR_SCHED_BIN": sched_guest_path(scheduler) or "",
        "KTSTR_CGROUP_PARENT": scheduler.cgroup_parent.path if scheduler.cgroup_parent else "",
        "KTSTR_ATTACH_TIMEOUT_S": max(1, round(attach_timeout_s)),
        "KTSTR_STOP_TIMEOUT_S": max(1, round(stop_timeout_s)),
        "KTSTR_WORKLOAD": workload,
        "KTSTR_WORKERS": workers,
        "KTSTR_DURATION_S": max(1, round(duration_s)),
        "KTSTR_PAYLOAD_TIMEOUT_S": max(1, round(payload_timeout_s)),
    }
    files: dict[str, bytes] = {
        "/ktstr/params.sh": params_sh(params).encode(),
        "/ktstr/sched_args": args_file(sched_args).encode(),
        "/ktstr/sysctls": sysctls_file(scheduler.sysctls).encode(),
    }
    if scheduler.binary.kind is SpecKind.KERNEL_BUILTIN:
        files["/ktstr/enable.sh"] = ("\n".join(scheduler.binary.enable) + "\n").encode()
        files["/ktstr/disable.sh"] = ("\n".join(scheduler.binary.disable) + "\n").encode()
    if payload_argv is not None:
        files["/ktstr/payload.sh"] = f"exec {shlex.join(payload_argv)}\n".encode()
    if inline_config is not None and scheduler.config_file_def is not None:
        files[scheduler.config_file_def.guest_path] = inline_config.encode()
    if scenario_files:
        files.update(scenario_files)
    return files


def exec_files(command: str) -> dict[str, bytes]:
    """Run segment for ``ktstr shell --exec``."""
    return {
        "/ktstr/params.sh": params_sh({"KTSTR_MODE": "exec"}).encode(),
        "/ktstr/cmd.sh": (command + "\n").encode(),
    }


def shell_files() -> dict[str, bytes]:
    return {"/ktstr/params.sh": params_sh({"KTSTR_MODE": "shell"}).encode()}
