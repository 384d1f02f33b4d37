"""``Worker``: the pull loop of one SUT.

Order at start: upload any spooled results, register (version handshake), then loop:
claim (long-poll) -> fetch the plan's files -> start -> run through the ``CellRunner``
(a watchdog ends it at its timeout; a heartbeat answer can end it too) -> spool the
result -> upload it. The service being away (restart) is waited out with a bounded
backoff.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ktstr import __version__
from ktstr.contract import Assignment, JobResult
from ktstr.service.client import RequestRejected, ServiceClient, ServiceFailed, ServiceUnreachable
from ktstr.service.schemas import JobResultIn, WorkerSession
from ktstr.worker.files import fetch_job_files
from ktstr.worker.runner import CellRunner
from ktstr.worker.spool import Pending, Spool

log = logging.getLogger(__name__)

T = TypeVar("T")


class Worker:
    def __init__(self, client: ServiceClient, *, name: str, sutclass: str,
                 runner: CellRunner, state_dir: Path, claim_wait_s: float = 10.0,
                 stop: threading.Event | None = None, max_backoff_s: float = 2.0) -> None:
        self.client = client
        self.name = name
        self.sutclass = sutclass
        self.runner = runner
        self.state_dir = state_dir
        self.spool = Spool(state_dir / "results")
        self.claim_wait_s = claim_wait_s
        self.stop = stop or threading.Event()
        self.max_backoff_s = max_backoff_s
        self.session: WorkerSession | None = None
        self._current: tuple[int, int] | None = None  # (job id, attempt)
        self._cancel = threading.Event()
        self.log = logging.getLogger(f"{__name__}.{name}")

    # --- plumbing ----------------------------------------------------------------
    def _retrying(self, what: str, call: Callable[[], T]) -> T | None:
        """``call()``, retried while the service is unreachable or failing; None if the
        worker is stopping."""
        delay = 0.1
        while not self.stop.is_set():
            try:
                return call()
            except (ServiceUnreachable, ServiceFailed) as exc:
                self.log.warning("%s: %s; retrying in %.1fs", what, exc, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)
        return None

    def _flush_spool(self) -> None:
        for pending in self.spool.pending():
            self._upload(pending)

    def _upload(self, pending: Pending) -> None:
        try:
            state = self._retrying(f"report job {pending.job_id}",
                                   lambda: self.client.report(pending.job_id, pending.result))
        except RequestRejected as exc:
            self.log.warning("service refused the result of job %s (%s); dropping it",
                             pending.job_id, exc.detail)
            self.spool.remove(pending)
            return
        if state is not None:
            self.log.info("job %s reported: %s", pending.job_id, state,
                          extra={"action": "report"})
            self.spool.remove(pending)

    def _register(self) -> WorkerSession | None:
        session = self._retrying("register", lambda: self.client.register(
            self.name, self.sutclass, __version__))
        if session is not None:
            self.session = session
            self.log.info("registered as %s (session %s)", self.name, session.session,
                          extra={"action": "register"})
        return session

    @contextlib.contextmanager
    def _heartbeats(self) -> Iterator[None]:
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.session.heartbeat_interval_s if self.session else 1.0):
                session, current = self.session, self._current
                if session is None:
                    continue
                try:
                    reply = self.client.heartbeat(self.name, session.session,
                                                  *(current or (None, None)))
                except (ServiceUnreachable, ServiceFailed, RequestRejected) as exc:
                    self.log.debug("heartbeat failed: %s", exc)
                    continue
                if reply.abort and current is not None and current == self._current:
                    self.log.warning("service ended job %s: %s", current[0], reply.reason)
                    self._cancel.set()

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(10)

    # --- the loop ------------------------------------------------------------------
    def run(self, max_jobs: int | None = None) -> int:
        """Work until stopped (or ``max_jobs`` done). Returns the jobs reported."""
        self._flush_spool()
        if self._register() is None:
            return 0
        done = 0
        with self._heartbeats():
            while not self.stop.is_set() and (max_jobs is None or done < max_jobs):
                job = self._claim()
                if job is None:
                    continue
                if self._run_one(job):
                    done += 1
        self._goodbye()
        return done

    def _goodbye(self) -> None:
        """Tell the service this worker stops (it shows ``offline``, not ``lost``, and a
        job left unfinished is requeued at once). Best effort: a service that is away
        finds out through the heartbeat timeout instead."""
        session = self.session
        if session is None:
            return
        try:
            self.client.goodbye(self.name, session.session)
        except (ServiceUnreachable, ServiceFailed, RequestRejected) as exc:
            self.log.warning("could not tell the service this worker stops: %s", exc)
            return
        self.log.info("offline (session %s)", session.session, extra={"action": "offline"})

    def _claim(self) -> Assignment | None:
        session = self.session
        assert session is not None
        try:
            return self._retrying("claim", lambda: self.client.claim(
                self.name, session.session, self.claim_wait_s))
        except RequestRejected as exc:
            if exc.status in (404, 409):  # forgotten or replaced: register again
                self.log.warning("claim refused (%s); registering again", exc.detail)
                self._register()
                return None
            raise

    def _run_one(self, job: Assignment) -> bool:
        self.log.info("job %s attempt %s: %s", job.job_id, job.attempt, job.cell.key,
                      extra={"action": "run"})
        workdir = self.state_dir / "jobs" / f"{job.job_id}-{job.attempt}"
        # fetch the plan's files *before* reporting the start: once a job is running the
        # worker needs nothing more from the service until it reports the result (which
        # the spool keeps across a service restart)
        fetched = self._fetch_files(job, workdir)
        if fetched is None:  # stopping
            return False
        try:
            self._retrying("start", lambda: self.client.start_job(
                job.job_id, self.name, job.attempt))
        except RequestRejected as exc:
            self.log.warning("cannot start job %s: %s", job.job_id, exc.detail)
            return False
        if self.stop.is_set():
            return False
        self._cancel.clear()
        self._current = (job.job_id, job.attempt)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self._cancel.set()

        watchdog = threading.Timer(job.timeout_s, expire)
        watchdog.daemon = True
        watchdog.start()
        stop_watch = threading.Thread(target=self._cancel_on_stop, daemon=True)
        stop_watch.start()
        t0 = time.monotonic()
        try:
            result = (self.runner.run(fetched, workdir, self._cancel)
                      if isinstance(fetched, Assignment) else fetched)
        finally:
            watchdog.cancel()
            self._current = None
        if self.stop.is_set():
            self.log.warning("stopping: job %s is left for the service to requeue",
                             job.job_id)
            return False
        reasons = list(result.reasons)
        if expired.is_set():
            reasons.insert(0, f"timed out after {job.timeout_s:g}s (timeout plus slack)")
        pending = Pending(job_id=job.job_id, result=JobResultIn(
            worker=self.name, attempt=job.attempt, timed_out=expired.is_set(),
            failed=result.failed or (result.outcome is None),
            outcome=result.outcome, reasons=reasons,
            duration_s=result.duration_s or (time.monotonic() - t0),
            details=result.details, log=result.log))
        self.spool.save(pending)
        shutil.rmtree(workdir, ignore_errors=True)
        self._upload(pending)
        return True

    def _fetch_files(self, job: Assignment, workdir: Path) -> Assignment | JobResult | None:
        """The job with its uploaded files fetched into ``workdir`` (a service that is away
        is waited out, as for every call), a failed ``JobResult`` if they cannot be
        fetched, or ``None`` when the worker is stopping."""
        try:
            local = self._retrying(f"fetch the files of job {job.job_id}",
                                   lambda: fetch_job_files(self.client, job, workdir))
        except (RequestRejected, OSError) as exc:
            return JobResult(failed=True, reasons=[f"cannot fetch the plan's files: {exc}"])
        return local

    def _cancel_on_stop(self) -> None:
        while self._current is not None:
            if self.stop.wait(0.2):
                self._cancel.set()
                return
