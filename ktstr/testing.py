"""Fakes and harnesses shipped with ktstr, for its own tests and for yours.

- ``ScriptedRunner``: a ``CellRunner`` that sleeps and returns a scripted verdict
  instead of booting a VM (select it for a worker with ``--runner scripted``).
- ``ServiceThread``: the scheduler service on 127.0.0.1 in a thread, as a context manager.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.service.schemas import Assignment
from ktstr.service.states import Outcome
from ktstr.worker.runner import JobResult

#: environment variable holding a ``ScriptedRunner`` script (JSON) for ``--runner scripted``
SCRIPT_ENV = "KTSTR_WORKER_SCRIPT"


class Script(Frozen):
    """What a scripted run does."""

    seconds: float = Field(0.0, ge=0)
    outcome: Outcome = Outcome.PASS
    reasons: list[str] = Field(default_factory=list)
    failed: bool = False


class RunnerScript(Frozen):
    default: Script = Script()
    #: per scheduler name, overriding ``default``
    schedulers: dict[str, Script] = Field(default_factory=dict)


class ScriptedRunner:
    """Fake ``CellRunner``: waits ``seconds`` (ending early if cancelled) and returns the
    scripted verdict. ``calls`` records the job ids it ran."""

    def __init__(self, script: RunnerScript | None = None) -> None:
        self.script = script or RunnerScript()
        self.calls: list[int] = []
        self._lock = threading.Lock()

    @classmethod
    def from_json(cls, text: str | None) -> ScriptedRunner:
        if not text:
            return cls()
        try:
            return cls(RunnerScript.model_validate(json.loads(text)))
        except ValueError as exc:
            raise UserError(f"bad {SCRIPT_ENV} runner script: {exc}") from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScriptedRunner:
        return cls.from_json((os.environ if env is None else env).get(SCRIPT_ENV))

    def run(self, job: Assignment, workdir: Path, cancel_event: threading.Event
            ) -> JobResult:
        with self._lock:
            self.calls.append(job.job_id)
        step = self.script.schedulers.get(job.cell.scheduler, self.script.default)
        t0 = time.monotonic()
        if cancel_event.wait(step.seconds):
            return JobResult(failed=True, reasons=["cancelled"],
                             duration_s=time.monotonic() - t0, log="cancelled\n")
        return JobResult(
            outcome=None if step.failed else step.outcome, failed=step.failed,
            reasons=list(step.reasons), duration_s=time.monotonic() - t0,
            details={"runner": "scripted"},
            log=f"scripted run of job {job.job_id}: {job.cell.key}\n")


class ServiceThread:
    """``with ServiceThread(settings) as svc:`` serves on ``svc.url``; ``svc.admin_token``
    holds the first-start admin token (None when the database already had users)."""

    def __init__(self, settings: Any, *, host: str = "127.0.0.1", port: int = 0,
                 start_timeout_s: float = 20.0) -> None:
        from ktstr.service.settings import Settings

        assert isinstance(settings, Settings)
        self.settings = settings
        self.host, self.port = host, port
        self.start_timeout_s = start_timeout_s
        self.admin_token: str | None = None
        self.url = ""

    def __enter__(self) -> ServiceThread:
        from ktstr.service.context import ServiceContext
        from ktstr.service.db.engine import Database
        from ktstr.service.server import listening_socket, make_server, prepare

        self._db = Database(self.settings.database_url)
        try:
            self.admin_token = prepare(self.settings, self._db)
            self.ctx = ServiceContext(settings=self.settings, db=self._db)
            self._server = make_server(self.ctx)
            self._sock_cm = listening_socket(self.host, self.port)
            sock = self._sock_cm.__enter__()
            self.port = sock.getsockname()[1]
            self.url = f"http://{self.host}:{self.port}"
            self._thread = threading.Thread(target=self._server.run,
                                            kwargs={"sockets": [sock]}, daemon=True,
                                            name="ktstr-service")
            self._thread.start()
            deadline = time.monotonic() + self.start_timeout_s
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise InfraError(f"the service did not start on {self.url} within "
                                     f"{self.start_timeout_s:g}s")
                time.sleep(0.01)
        except BaseException:
            self._db.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self._sock_cm.__exit__(None, None, None)
        self._db.close()


class TemporaryPostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (``initdb`` into a temporary directory,
    run as the ``postgres`` user when we are root), stopped and removed on exit.
    ``url(db)`` gives a ``postgresql://`` URL; ``create_database``/``drop_database``."""

    def __init__(self, bin_dir: Path = Path("/usr/lib/postgresql/15/bin"),
                 fast: bool = True) -> None:
        self.bin_dir = bin_dir
        self.fast = fast
        self.port = 0

    def _argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def __enter__(self) -> TemporaryPostgres:
        import shutil
        import socket
        import subprocess
        import tempfile

        if not (self.bin_dir / "initdb").exists():
            raise InfraError(f"PostgreSQL is not installed in {self.bin_dir}; run "
                             "scripts/setup.sh")
        self.root = Path(tempfile.mkdtemp(prefix="ktstr-pg-"))
        self.root.chmod(0o755)
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sock, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sock} "
                "-c max_connections=400")
        if self.fast:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try:
            subprocess.run(self._argv("initdb", "-D", str(data), "-A", "trust", "-U",
                                      "postgres", "-E", "UTF8", "--no-sync"),
                           check=True, capture_output=True)
            subprocess.run(self._argv("pg_ctl", "-D", str(data), "-l",
                                      str(self.root / "server.log"), "-w", "-t", "60",
                                      "-o", opts, "start"), check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(self.root, ignore_errors=True)
            raise InfraError(f"cannot start PostgreSQL: {exc.stderr.decode(errors='replace')}"
                             ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil
        import subprocess

        subprocess.run(self._argv("pg_ctl", "-D", str(self.root / "data"), "-m", "fast",
                                  "-w", "-t", "60", "stop"), capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
