"""Slurm: ``sbatch`` a generated kickoff script, ``scontrol show job`` for status,
``scancel`` to cancel, ``sinfo`` for availability and inventory. Command builders and
output parsers are pure; ``SlurmProvider`` runs them."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.service.providers.base import (
    Handle,
    NodeInfo,
    ProviderError,
    ProviderJob,
    ProviderState,
    ProviderStatus,
)


class SlurmParams(Frozen):
    """``type: slurm`` params of a SUT class."""

    partition: str | None = None
    account: str | None = None
    sbatch_args: list[str] = Field(default_factory=list)
    #: slurm.conf for every Slurm command (``SLURM_CONF``); None: Slurm's own lookup
    slurm_conf: Path | None = None


def render_kickoff(job: ProviderJob, p: SlurmParams, log: Path) -> str:
    """The batch script that runs the job's command (pure)."""
    minutes = max(1, int(job.timeout_s // 60) + 1)
    lines = ["#!/bin/sh", f"#SBATCH --job-name=ktstr-{job.job_id}-{job.attempt}",
             f"#SBATCH --output={log}", "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
             f"#SBATCH --time={minutes}"]
    if p.partition:
        lines.append(f"#SBATCH --partition={p.partition}")
    if p.account:
        lines.append(f"#SBATCH --account={p.account}")
    lines += [f"#SBATCH {shlex.quote(a)}" for a in p.sbatch_args]
    lines += ["set -e", f"echo \"ktstr job {job.job_id} on $(hostname)\"",
              "exec " + shlex.join(job.argv), ""]
    return "\n".join(lines)


def sbatch_argv(script: Path) -> list[str]:
    return ["sbatch", "--parsable", str(script)]


def parse_sbatch(out: str) -> str:
    """``123`` or ``123;cluster`` -> ``123``."""
    first = out.strip().splitlines()[0] if out.strip() else ""
    job_id = first.split(";")[0]
    if not job_id.isdigit():
        raise ProviderError(f"sbatch gave no job id: {out.strip()!r}")
    return job_id


def scontrol_argv(job_id: str) -> list[str]:
    return ["scontrol", "show", "job", "--oneliner", job_id]


def scancel_argv(job_id: str) -> list[str]:
    return ["scancel", job_id]


def sinfo_argv() -> list[str]:
    return ["sinfo", "--noheader", "--Node", "--format=%N|%T|%c|%m|%P"]


def parse_scontrol(out: str) -> dict[str, str]:
    """``Key=Value`` pairs of one ``--oneliner`` job record."""
    fields: dict[str, str] = {}
    for token in out.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}


def slurm_status(fields: dict[str, str], cancelled_by_us: bool) -> ProviderStatus:
    state = fields.get("JobState", "UNKNOWN")
    reason = fields.get("Reason")
    code = fields.get("ExitCode", "0:0").split(":")[0]
    exit_code = int(code) if code.isdigit() else None
    if state in _PENDING:
        return ProviderStatus(state=ProviderState.PENDING, reason=reason)
    if state in _RUNNING:
        return ProviderStatus(state=ProviderState.RUNNING)
    if state == "COMPLETED":
        return ProviderStatus(state=ProviderState.COMPLETED, exit_code=exit_code)
    if state == "CANCELLED" and cancelled_by_us:
        return ProviderStatus(state=ProviderState.CANCELLED, reason="cancelled by ktstr")
    why = {"CANCELLED": "the Slurm job was cancelled outside ktstr (scancel)",
           "TIMEOUT": "the Slurm job hit its time limit",
           "NODE_FAIL": "the Slurm node failed", "OUT_OF_MEMORY": "the Slurm job ran "
           "out of memory"}.get(state, f"the Slurm job ended {state}")
    if state == "FAILED":
        why = f"the job exited with status {exit_code}"
    if reason and reason != "None":
        why += f" (reason: {reason})"
    return ProviderStatus(state=ProviderState.FAILED, exit_code=exit_code, reason=why)


def parse_sinfo(out: str) -> list[NodeInfo]:
    nodes: dict[str, NodeInfo] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        name, state, cpus, mem, part = parts
        base = state.rstrip("*~#!%$@^-")
        old = nodes.get(name)
        groups = [*(old.groups if old else []), part.rstrip("*")]
        nodes[name] = NodeInfo(
            name=name, up=base not in ("down", "drained", "draining", "fail", "unknown"),
            allocated=base in ("allocated", "mixed", "completing"),
            cpus=int(cpus) if cpus.isdigit() else None,
            memory_mb=int(mem) if mem.isdigit() else None, groups=groups)
    return list(nodes.values())


def _run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                              check=False, env=dict(env) if env is not None else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProviderError(f"{shlex.join(argv)} failed: {exc}") from exc
    if done.returncode != 0:
        raise ProviderError(f"{shlex.join(argv)} exited {done.returncode}: "
                            f"{done.stderr.strip()}")
    return done.stdout


class SlurmProvider:
    name = "slurm"

    def __init__(self, params: SlurmParams, workdir: Path) -> None:
        self.params, self.workdir = params, workdir
        self._cancelled: set[str] = set()
        self._env: dict[str, str] | None = None
        if params.slurm_conf is not None:
            self._env = {**os.environ, "SLURM_CONF": str(params.slurm_conf)}

    def log_path(self, job: ProviderJob) -> Path:
        return self.workdir / f"job-{job.job_id}-{job.attempt}.log"

    def kickoff(self, job: ProviderJob) -> Handle:
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = self.workdir / f"job-{job.job_id}-{job.attempt}.sh"
        script.write_text(render_kickoff(job, self.params, self.log_path(job)))
        return Handle(provider=self.name, ref=parse_sbatch(_run(sbatch_argv(script), self._env)))

    def status(self, handle: Handle) -> ProviderStatus:
        fields = parse_scontrol(_run(scontrol_argv(handle.ref), self._env))
        return slurm_status(fields, handle.ref in self._cancelled)

    def cancel(self, handle: Handle) -> None:
        self._cancelled.add(handle.ref)
        _run(scancel_argv(handle.ref), self._env)

    def available(self) -> bool:
        try:
            return any(n.up for n in self.inventory())
        except ProviderError:
            return False

    def inventory(self) -> list[NodeInfo]:
        nodes = parse_sinfo(_run(sinfo_argv(), self._env))
        if self.params.partition:
            nodes = [n for n in nodes if self.params.partition in n.groups]
        return nodes
