"""The runner interface and the real runner.

A ``CellRunner`` runs one claimed job and returns a ``JobResult``; it must return
promptly once ``cancel_event`` is set. ``KtstrRunner`` runs the cell as a subprocess
(``ktstr run ... --json`` for a test cell, ``ktstr verifier ... --json FILE`` for a
verifier cell) and reads its verdict. ``make_runner`` picks one for a worker's
``--runner``; ``scripted`` is the fake of ``ktstr.testing``, imported only then.
"""

from __future__ import annotations

import enum
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

from ktstr.contract import Assignment, Cell, CellKind, JobResult
from ktstr.results.model import Verdict

log = logging.getLogger(__name__)

#: the most log text a result carries (its tail is kept)
MAX_LOG_CHARS = 2_000_000


class CellRunner(Protocol):
    def run(self, job: Assignment, workdir: Path, cancel_event: threading.Event
            ) -> JobResult: ...


class RunnerKind(enum.StrEnum):
    """A worker's ``--runner``."""

    KTSTR = "ktstr"  # run cells with ``ktstr run`` / ``ktstr verifier``
    SCRIPTED = "scripted"  # ktstr.testing.ScriptedRunner: no VM (the service's tests)


def make_runner(kind: RunnerKind, script: str | None = None) -> CellRunner:
    """The runner a worker's ``--runner`` names. ``scripted`` runs ``script`` (the JSON
    of ``ktstr.testing.RunnerScript``; None: the default script). The test fakes are
    imported here, and only for ``scripted``: production code never loads them."""
    if kind is RunnerKind.SCRIPTED:
        from ktstr.testing.runner import ScriptedRunner

        return ScriptedRunner.from_json(script)
    return KtstrRunner()


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


def parse_verdict(text: str) -> tuple[Verdict, list[str], dict[str, Any]] | None:
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
                outcome = Verdict(str(data["verdict"]).lower())
            except ValueError:
                return None
            reasons = data.get("reasons") or []
            if not isinstance(reasons, list):
                reasons = [str(reasons)]
            return outcome, [str(r) for r in reasons], data
    return None


#: how one outcome of several cells is chosen: the scheduler's failure first
_WORST = ("fail", "error", "pass", "skip")


def verifier_verdict(path: Path) -> tuple[Verdict, list[str], dict[str, Any]] | None:
    """The verdict of a ``ktstr verifier --json FILE`` document (``sweep.runner.
    write_summary``: the sweep's cells, no verdict of its own): the worst cell's outcome
    and every cell's reasons; None when it is not such a document or has no cell."""
    from ktstr.errors import UserError
    from ktstr.sweep.runner import read_summary

    try:
        _, cells = read_summary(path)
    except UserError:
        return None
    if not cells:
        return None
    values = {c.outcome.value for c in cells}
    worst = next(v for v in _WORST if v in values)
    reasons = [f"{c.id}: {r}" if len(cells) > 1 else r for c in cells for r in c.reasons]
    return Verdict(worst), reasons, json.loads(path.read_text())


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
        verdict = (verifier_verdict(json_file) if job.cell.kind is CellKind.VERIFIER
                   else parse_verdict(stdout))
        if verdict is None:
            tail = stderr.strip().splitlines()[-1:] or ["(no stderr)"]
            return JobResult(failed=True, duration_s=duration, log=logtext, reasons=[
                f"{' '.join(argv[:4])} exited {proc.returncode} without a JSON verdict: "
                f"{tail[0]}"])
        outcome, reasons, data = verdict
        repro = data.get("repro") if isinstance(data.get("repro"), dict) else None
        if repro and repro.get("status") == "flaky":
            reasons = ["flaky: the failure did not recur in its traced rerun", *reasons]
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
