"""Static SUTs reached with the system ``ssh`` client.

The remote command runs in its own session (``setsid -w``), so its process group id is
its pid; the wrapper prints that first (``ktstr-pgid N``), and ``cancel`` signals the
whole group with ``kill -TERM -- -N`` over a second ssh connection.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

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

PGID_TAG = "ktstr-pgid"


class SshTarget(Frozen):
    """``connection: {method: SSH, params: {host, user, keyfile, port}}`` of a SUT."""

    name: str
    host: str
    user: str | None = None
    keyfile: Path | None = None
    port: int | None = Field(None, ge=1, le=65535)
    options: dict[str, str] = Field(default_factory=dict)  # extra -o KEY=VALUE

    @classmethod
    def from_connection(cls, name: str, params: Mapping[str, Any]) -> SshTarget:
        return cls.model_validate({"name": name, **params})


def ssh_argv(t: SshTarget, remote: str, ssh: str = "ssh") -> list[str]:
    """The ``ssh`` command running ``remote`` (a shell string) on ``t`` (pure)."""
    argv = [ssh, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    for key, value in sorted(t.options.items()):
        argv += ["-o", f"{key}={value}"]
    if t.keyfile is not None:
        argv += ["-i", str(t.keyfile), "-o", "IdentitiesOnly=yes"]
    if t.port is not None:
        argv += ["-p", str(t.port)]
    if t.user:
        argv += ["-l", t.user]
    return [*argv, t.host, "--", remote]


def remote_job_command(argv: Sequence[str]) -> str:
    """The remote shell string: a new session, its pgid announced, then the job (pure)."""
    inner = f'echo "{PGID_TAG} $$"; exec "$@"'
    return shlex.join(["exec", "setsid", "-w", "sh", "-c", inner, "ktstr-job", *argv])


def remote_kill_command(pgid: int, signal: str = "TERM") -> str:
    return f"kill -{signal} -- -{int(pgid)}"


def parse_pgid(line: str) -> int | None:
    parts = line.split()
    if len(parts) == 2 and parts[0] == PGID_TAG and parts[1].isdigit():
        return int(parts[1])
    return None


class _Run:
    def __init__(self, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.proc, self.log = proc, log
        self.pgid: int | None = None
        self.cancelled = False
        self.has_pgid = threading.Event()
        self.pump = threading.Thread(target=self._copy, daemon=True)
        self.pump.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if self.pgid is None:
                self.pgid = parse_pgid(raw.decode(errors="replace"))
                if self.pgid is not None:
                    self.has_pgid.set()
                    continue
            self.log.write(raw)
            self.log.flush()
        self.has_pgid.set()


class SshProvider:
    """Runs jobs on one SSH SUT; logs stream into ``logs_dir/job-ID.log``. Use as a
    context manager: leaving it cancels what still runs."""

    name = "ssh"

    def __init__(self, target: SshTarget, logs_dir: Path, ssh: str = "ssh") -> None:
        self.target, self.logs_dir, self.ssh = target, logs_dir, ssh
        self._runs: dict[str, _Run] = {}

    def __enter__(self) -> SshProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        for key, run in list(self._runs.items()):
            if run.proc.poll() is None:
                self.cancel(Handle(provider=self.name, ref=key, sut=self.target.name))
        for run in self._runs.values():
            run.proc.wait(30)
            run.pump.join(10)
            if run.proc.stdout is not None:
                run.proc.stdout.close()
            run.log.close()

    def log_path(self, handle: Handle) -> Path:
        return self.logs_dir / f"{handle.ref}.log"

    def kickoff(self, job: ProviderJob) -> Handle:
        key = f"job-{job.job_id}-{job.attempt}"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.logs_dir / f"{key}.log", "wb")  # noqa: SIM115 (closed on exit)
        argv = ssh_argv(self.target, remote_job_command(job.argv), self.ssh)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.close()
            raise ProviderError(f"cannot start ssh to {self.target.host}: {exc} "
                                f"(argv: {shlex.join(argv)})") from exc
        self._runs[key] = _Run(proc, log)
        return Handle(provider=self.name, ref=key, sut=self.target.name)

    def _run(self, handle: Handle) -> _Run:
        try:
            return self._runs[handle.ref]
        except KeyError:
            raise ProviderError(f"unknown ssh job {handle.ref!r} (started by another "
                                "service process?)") from None

    def status(self, handle: Handle) -> ProviderStatus:
        run = self._run(handle)
        rc = run.proc.poll()
        if rc is None:
            return ProviderStatus(state=ProviderState.RUNNING)
        if run.cancelled:
            return ProviderStatus(state=ProviderState.CANCELLED, exit_code=rc,
                                  reason="cancelled by ktstr")
        if rc == 0:
            return ProviderStatus(state=ProviderState.COMPLETED, exit_code=0)
        why = ("ssh failed (connection or authentication)" if rc == 255
               else f"the job exited with status {rc}")
        return ProviderStatus(state=ProviderState.FAILED, exit_code=rc, reason=why)

    def cancel(self, handle: Handle) -> None:
        run = self._run(handle)
        run.cancelled = True
        if not run.has_pgid.wait(15) or run.pgid is None:
            run.proc.terminate()
            return
        done = subprocess.run(ssh_argv(self.target, remote_kill_command(run.pgid), self.ssh),
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0 and run.proc.poll() is None:
            raise ProviderError(f"cannot signal process group {run.pgid} on "
                                f"{self.target.host}: {done.stderr.strip()}")

    def wait(self, handle: Handle, timeout: float) -> ProviderStatus:
        self._run(handle).proc.wait(timeout)
        return self.status(handle)

    def available(self) -> bool:
        done = subprocess.run(ssh_argv(self.target, "true", self.ssh), capture_output=True,
                              timeout=30, check=False)
        return done.returncode == 0

    def inventory(self) -> list[NodeInfo]:
        return [NodeInfo(name=self.target.name, up=self.available(),
                         allocated=any(r.proc.poll() is None for r in self._runs.values()))]
