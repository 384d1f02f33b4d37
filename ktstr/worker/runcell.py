"""Run one dispatched job on the SUT: what the service starts over ssh or in a Slurm
batch script (``python -m ktstr.worker.runcell [--runner R] [--script JSON] JOB_JSON``).

It prints ``ktstr-runcell pid N`` first, then the run's log, and last a
``ktstr-result {JSON}`` line that the service parses (``parse_result``). SIGTERM (the
service's cancel signals the whole process group) ends the run through the runner's
cancel event, so a runner's own child sessions are ended too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from ktstr.service.schemas import Assignment
from ktstr.worker.runner import CellRunner, JobResult, KtstrRunner

RESULT_TAG = "ktstr-result"
PID_TAG = "ktstr-runcell pid"


def result_line(result: JobResult) -> str:
    """The last line of a run's output (pure); the log itself is printed before it."""
    return f"{RESULT_TAG} " + result.model_copy(update={"log": ""}).model_dump_json()


def parse_result(text: str) -> JobResult | None:
    """The ``JobResult`` of a run's output: its last ``ktstr-result`` line (pure)."""
    for line in reversed(text.splitlines()):
        if line.startswith(RESULT_TAG + " "):
            try:
                return JobResult.model_validate_json(line[len(RESULT_TAG) + 1:])
            except ValueError:
                return None
    return None


def _runner(kind: str, script: str | None) -> CellRunner:
    if kind == "scripted":
        from ktstr.testing import ScriptedRunner

        return ScriptedRunner.from_json(script)
    return KtstrRunner()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ktstr.worker.runcell")
    ap.add_argument("--runner", choices=["ktstr", "scripted"], default="ktstr")
    ap.add_argument("--script", default=None, help="the scripted runner's script (JSON)")
    ap.add_argument("job", help="the Assignment (JSON) the service claimed")
    args = ap.parse_args(argv)
    job = Assignment.model_validate_json(args.job)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    print(f"{PID_TAG} {os.getpid()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"ktstr-job-{job.job_id}-"))
    try:
        result = _runner(args.runner, args.script).run(job, workdir, cancel)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(result.log if result.log.endswith("\n") or not result.log
                     else result.log + "\n")
    print(result_line(result), flush=True)
    return 0 if not cancel.is_set() else 143


if __name__ == "__main__":
    raise SystemExit(main())
