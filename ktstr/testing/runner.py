"""``ScriptedRunner``: a fake ``CellRunner`` that waits and returns a scripted verdict
instead of booting a VM.

A worker uses it with ``--runner scripted`` (``ktstr sched worker``, ``python -m
ktstr.worker.runcell``); ``ktstr.worker.runner.make_runner`` imports this module only
then, so production code never loads it otherwise.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field

from ktstr.contract import Assignment, JobResult
from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.results.model import Verdict

#: environment variable holding a ``ScriptedRunner`` script (JSON) for ``--runner scripted``
SCRIPT_ENV = "KTSTR_WORKER_SCRIPT"


class Script(Frozen):
    """What a scripted run does."""

    seconds: float = Field(0.0, ge=0)
    #: end the run as soon as this file exists (``seconds`` is then the longest wait):
    #: a test opens the gate when it is ready, instead of guessing a duration
    until_file: Path | None = None
    outcome: Verdict = Verdict.PASS
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
        if self._wait(step, cancel_event):
            return JobResult(failed=True, reasons=["cancelled"],
                             duration_s=time.monotonic() - t0, log="cancelled\n")
        return JobResult(
            outcome=None if step.failed else step.outcome, failed=step.failed,
            reasons=list(step.reasons), duration_s=time.monotonic() - t0,
            details={"runner": "scripted"},
            log=f"scripted run of job {job.job_id}: {job.cell.key}\n")

    @staticmethod
    def _wait(step: Script, cancel_event: threading.Event) -> bool:
        """Wait out the step; True if cancelled."""
        if step.until_file is None:
            return cancel_event.wait(step.seconds)
        deadline = time.monotonic() + step.seconds
        while not step.until_file.exists() and time.monotonic() < deadline:
            if cancel_event.wait(0.05):
                return True
        return False
