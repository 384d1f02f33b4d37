"""Run one dispatched job on the SUT: what the service starts over ssh or in a Slurm
batch script (``python -m ktstr.worker.runcell [--runner R] [--script JSON] JOB_JSON``).

It prints ``ktstr-runcell pid N`` first, then the run's log, and last a
``ktstr-result {JSON}`` line that the service parses (``ktstr.contract.parse_result``). SIGTERM (the
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

from ktstr.contract import Assignment, result_line
from ktstr.worker.runner import RunnerKind, make_runner

PID_TAG = "ktstr-runcell pid"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ktstr.worker.runcell")
    ap.add_argument("--runner", choices=[k.value for k in RunnerKind],
                    default=RunnerKind.KTSTR.value)
    ap.add_argument("--script", default=None, help="the scripted runner's script (JSON)")
    ap.add_argument("job", help="the Assignment (JSON) the service claimed")
    args = ap.parse_args(argv)
    job = Assignment.model_validate_json(args.job)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    print(f"{PID_TAG} {os.getpid()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"ktstr-job-{job.job_id}-"))
    try:
        result = make_runner(RunnerKind(args.runner), args.script).run(job, workdir, cancel)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(result.log if result.log.endswith("\n") or not result.log
                     else result.log + "\n")
    print(result_line(result), flush=True)
    return 0 if not cancel.is_set() else 143


if __name__ == "__main__":
    raise SystemExit(main())
