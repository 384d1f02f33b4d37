"""Service and worker processes for the end-to-end tests; always ended by PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from svchelpers import wait_until

KTSTR = [str(Path(sys.executable).parent / "ktstr")]


def _as_from_a_terminal() -> None:
    """In the child before exec: SIGINT back to its default action. A suite started in
    the background by a shell without job control (``cmd &`` in a script, as CI runners
    and ``nohup`` do) inherits SIGINT ignored, and a Python child started with it
    ignored never raises KeyboardInterrupt; the tests that interrupt a client stand for
    a user pressing Ctrl-C in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Proc:
    """A child process with its output in a file; ``stop()`` or ``kill()`` ends it."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv, self.log = argv, log
        self._out = open(log, "ab")  # noqa: SIM115 (closed in stop/kill)
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})},
                                     preexec_fn=_as_from_a_terminal)  # noqa: PLW1509

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._out.close()

    def stop(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_service(tmp: Path, db_url: str, sutclasses: Path, port: int = 0,
                  log_name: str = "service.log",
                  heartbeat_timeout: str = "1s") -> tuple[Proc, str]:
    """``ktstr sched run`` on 127.0.0.1; returns the process and its URL. The short
    heartbeat timeout lets lost-worker tests finish quickly; a test about something else
    passes a longer one, so that a loaded host's late heartbeats do not lose its jobs."""
    log = tmp / log_name
    proc = Proc([*KTSTR, "sched", "run", "--host", "127.0.0.1", "--port", str(port),
                 "--database", db_url, "--storage", str(tmp / "storage"),
                 "--sutclasses", str(sutclasses), "--heartbeat-timeout", heartbeat_timeout,
                 "--timeout-slack", "30s"], log)

    def listening() -> str | None:
        if not proc.alive():
            raise AssertionError(f"the service exited:\n{proc.output()}")
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.output())
        return m.group(1) if m else None

    url = wait_until(listening, 30, "the service to listen")
    return proc, url


def start_worker(tmp: Path, url: str, token: str, name: str, seconds: float,
                 state_dir: Path | None = None) -> Proc:
    env = {"KTSTR_WORKER_SCRIPT": f'{{"default": {{"seconds": {seconds}}}}}'}
    return Proc([*KTSTR, "-v", "sched", "worker", "--sutclass", "demo", "--name", name,
                 "--url", url, "--token", token, "--runner", "scripted", "--claim-wait", "1",
                 "--state-dir", str(state_dir or tmp / f"state-{name}")],
                tmp / f"{name}.log", env)


def admin_token(service_output: str) -> str:
    m = re.search(r"^Created default admin user 'admin' with token: (\S+)$", service_output,
                  re.MULTILINE)
    assert m, f"no admin banner in:\n{service_output}"
    return m.group(1)
