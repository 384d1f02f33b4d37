"""The runner interface and the real runner.

A ``CellRunner`` runs one claimed job and returns a ``JobResult``; it must return
promptly once ``cancel_event`` is set. ``KtstrRunner`` runs the cell as a subprocess
(``ktstr run ... --json`` for a test cell, ``ktstr verifier ... --json FILE`` for a
verifier cell) and reads its verdict; ``ktstr.testing.ScriptedRunner`` is the fake.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.service.planner import Cell, CellKind
from ktstr.service.schemas import Assignment
from ktstr.service.states import Outcome

log = logging.getLogger(__name__)

#: the most log text a result carries (its tail is kept)
MAX_LOG_CHARS = 2_000_000


class JobResult(Frozen):
    """What a runner reports. ``failed`` means no verdict could be produced (the runner
    or the machinery broke); otherwise ``outcome`` is the cell's verdict."""

    outcome: Outcome | None = None
    failed: bool = False
    reasons: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    details: dict[str, Any] = Field(default_factory=dict)
    log: str = ""


class CellRunner(Protocol):
    def run(self, job: Assignment, workdir: Path, cancel_event: threading.Event
            ) -> JobResult: ...


def cell_argv(cell: Cell, ktstr: Sequence[str], json_file: Path) -> list[str]:
    """The command that runs ``cell`` (pure)."""
    common = ["--kernel", cell.kernel, "--scheduler", cell.scheduler,
              "--topology", cell.topology]
    if cell.kind is CellKind.VERIFIER:
        return [*ktstr, "verifier", *common, "--json", str(json_file)]
    argv = [*ktstr, "run", *common, "--duration", f"{cell.duration_s:g}s", "--json"]
    if cell.test:
        argv += ["--scenario", cell.test]  # a plan's tests are canned scenario names
    return argv


def default_ktstr() -> list[str]:
    """The ``ktstr`` script beside this interpreter, else ``ktstr`` on PATH."""
    beside = Path(sys.executable).parent / "ktstr"
    return [str(beside)] if beside.exists() else ["ktstr"]


def parse_verdict(text: str) -> tuple[Outcome, list[str], dict[str, Any]] | None:
    """The verdict of ``--json`` output: the whole text, else its last JSON line."""
    candidates = [text.strip()] + [ln.strip() for ln in reversed(text.splitlines())]
    for cand in candidates:
        if not cand.startswith("{"):
            continue
        try:
            data = json.loads(cand)
        except ValueError:
            continue
        if isinstance(data, dict) and "verdict" in data:
            try:
                outcome = Outcome(str(data["verdict"]).lower())
            except ValueError:
                return None
            reasons = data.get("reasons") or []
            if not isinstance(reasons, list):
                reasons = [str(reasons)]
            return outcome, [str(r) for r in reasons], data
    return None


def _tail(text: str) -> str:
    return text if len(text) <= MAX_LOG_CHARS else text[-MAX_LOG_CHARS:]


class KtstrRunner:
    """Runs cells with the ``ktstr`` command of this installation."""

    def __init__(self, ktstr: Sequence[str] | None = None, *, grace_s: float = 10.0) -> None:
        self.ktstr = list(ktstr) if ktstr else default_ktstr()
        self.grace_s = grace_s

    def run(self, job: Assignment, workdir: Path, cancel_event: threading.Event
            ) -> JobResult:
        workdir.mkdir(parents=True, exist_ok=True)
        json_file = workdir / "verdict.json"
        argv = cell_argv(job.cell, self.ktstr, json_file)
        out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=workdir,
                                        start_new_session=True)
            except OSError as exc:
                return JobResult(failed=True, reasons=[f"cannot start {argv[0]}: {exc}"])
            cancelled = self._wait(proc, cancel_event)
        duration = time.monotonic() - started
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        logtext = _tail(f"$ {' '.join(argv)}\n{stderr}\n--- stdout ---\n{stdout}")
        if cancelled:
            return JobResult(failed=True, reasons=["cancelled: the job was ended"],
                             duration_s=duration, log=logtext)
        source = json_file.read_text() if job.cell.kind is CellKind.VERIFIER and \
            json_file.exists() else stdout
        verdict = parse_verdict(source)
        if verdict is None:
            tail = stderr.strip().splitlines()[-1:] or ["(no stderr)"]
            return JobResult(failed=True, duration_s=duration, log=logtext, reasons=[
                f"{' '.join(argv[:4])} exited {proc.returncode} without a JSON verdict: "
                f"{tail[0]}"])
        outcome, reasons, data = verdict
        return JobResult(outcome=outcome, reasons=reasons, duration_s=duration,
                         details={"exit_code": proc.returncode, "report": data}, log=logtext)

    def _wait(self, proc: subprocess.Popen[bytes], cancel_event: threading.Event) -> bool:
        """Wait for the process; on cancel end its whole session. True if cancelled."""
        while proc.poll() is None:
            if cancel_event.wait(0.2):
                self._end(proc)
                return True
        return False

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        for sig, wait in ((signal.SIGTERM, self.grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
