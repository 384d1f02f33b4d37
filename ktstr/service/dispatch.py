"""The service-side dispatcher: runs the jobs of ``dispatch: ssh`` and ``type: slurm``
classes through their providers.

Each SUT of such a class (for Slurm: each of ``max_jobs`` slots) is a *slot* with a
worker row owned by the first admin, so a dispatched job is claimed with the pull
workers' own claim transaction (same priority/age rule, same row locks: no job runs
twice) and heartbeated like a pulled one (the reaper treats a dead service's jobs as
lost). One ``tick`` (synchronous, in a thread): heartbeat, poll every running job's
``status`` (ending it on plan-cancel, or when the service already ended it), record
final ones like a worker report, then claim and ``kickoff`` for free slots.
``run_dispatcher`` calls ``tick`` whenever the class's wake-ups fire, at most
``Settings.dispatch_poll_s`` apart while jobs run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from ktstr import __version__
from ktstr.contract import Assignment, parse_result
from ktstr.service.context import ServiceContext
from ktstr.service.db import claims, jobs, reports, workers
from ktstr.service.db.dispatch import (
    JobView,
    cancel_job,
    dispatcher_principal,
    give_up,
    job_views,
    reattach,
    record_handle,
)
from ktstr.service.db.jobs import WorkerRef
from ktstr.service.db.sutclasses import sutclass_ids
from ktstr.service.errors import Conflict, NotFound
from ktstr.service.providers.base import (
    Handle,
    ProviderError,
    ProviderJob,
    ProviderState,
    ProviderStatus,
    SutProvider,
)
from ktstr.service.providers.slurm import SlurmParams, SlurmProvider
from ktstr.service.providers.ssh import SshProvider, SshTarget
from ktstr.service.publish import keep_and_publish
from ktstr.service.schemas import Heartbeat, JobResultIn, JobStart, WorkerRegister
from ktstr.service.settings import PROTOCOL_VERSION
from ktstr.service.sutclasses import AnySutClass, Dispatch, SlurmClass, SutClass
from ktstr.service.wakeup import DISPATCH_KEY

log = logging.getLogger(__name__)

#: longest idle wait, for changes made by another service process
IDLE_POLL_S = 5.0
MAX_LOG_CHARS = 2_000_000


@dataclass
class Running:
    job: Assignment
    handle: Handle
    log_path: Path
    t0: float = field(default_factory=time.monotonic)
    started: bool = False
    cancel_reason: str | None = None


@dataclass
class Slot:
    """One SUT (or Slurm slot) the service runs jobs on."""

    name: str
    sutclass: str
    provider: SutProvider
    command: list[str]
    session: int = 0
    last_beat: float = 0.0
    running: Running | None = None


def _read_log(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text if len(text) <= MAX_LOG_CHARS else text[-MAX_LOG_CHARS:]


def result_of(status: ProviderStatus, log_text: str, worker: str, attempt: int,
              duration_s: float) -> JobResultIn:
    """The report of a finished (completed or failed) dispatched job (pure)."""
    parsed = parse_result(log_text)
    reasons: list[str] = []
    if status.state is ProviderState.COMPLETED and parsed is None:
        reasons.append("the remote command exited 0 without a ktstr-result line")
    if status.state is not ProviderState.COMPLETED:
        reasons.append(status.reason or f"the job ended {status.state.value}")
    if parsed is None:
        return JobResultIn(worker=worker, attempt=attempt, failed=True, reasons=reasons,
                           duration_s=duration_s, log=log_text,
                           details={"exit_code": status.exit_code})
    failed = parsed.failed or status.state is not ProviderState.COMPLETED
    return JobResultIn(worker=worker, attempt=attempt, failed=failed,
                       outcome=None if failed else parsed.outcome,
                       reasons=[*reasons, *parsed.reasons],
                       duration_s=parsed.duration_s or duration_s,
                       details={**parsed.details, "exit_code": status.exit_code},
                       log=log_text)


class Dispatcher:
    """Owns the providers of every dispatched class; ``close()`` cancels what runs."""

    def __init__(self, ctx: ServiceContext, classes: Sequence[AnySutClass]) -> None:
        self.ctx = ctx
        self.slots: list[Slot] = []
        self._ssh: list[SshProvider] = []
        storage = ctx.settings.storage.resolve()
        for c in classes:
            if not c.enabled:
                continue
            if isinstance(c, SutClass) and c.dispatch is Dispatch.SSH:
                for sut in c.suts:
                    prov = SshProvider(SshTarget.from_connection(sut.name,
                                                                 sut.connection.params),
                                       storage / "dispatch" / c.sutclass / sut.name)
                    self._ssh.append(prov)
                    self.slots.append(Slot(sut.name, c.sutclass, prov,
                                           list(c.params.command)))
            elif isinstance(c, SlurmClass):
                p = c.params
                slurm = SlurmProvider(
                    SlurmParams(partition=p.partition, account=p.account,
                                sbatch_args=p.sbatch_args, slurm_conf=p.slurm_conf),
                    (p.spool or storage / "slurm") / c.sutclass)
                self.slots += [Slot(sut.name, c.sutclass, slurm, list(p.command))
                               for sut in c.suts]
        self.class_ids: list[int] = []

    def open(self) -> None:
        """Register every slot as a worker. A Slurm slot re-attaches to the job it held
        when the previous service run stopped (by its Slurm job id); an SSH slot's job
        is requeued (its ssh session ended with that run)."""
        ctx = self.ctx
        self.who = dispatcher_principal(ctx.db)
        ids = sutclass_ids(ctx.db)
        self.class_ids = sorted({ids[s.sutclass] for s in self.slots if s.sutclass in ids})
        self.refs: dict[str, WorkerRef] = {}
        for slot in self.slots:
            if isinstance(slot.provider, SlurmProvider) and self._has_worker_row(slot):
                self._reattach(slot)
            else:
                out = workers.register(ctx.db, self.who, WorkerRegister(
                    name=slot.name, sutclass=slot.sutclass, version=__version__,
                    protocol=PROTOCOL_VERSION), ctx.settings, ctx.clock())
                slot.session = out.session
                if out.requeued_jobs:
                    log.warning("%s: requeued %s held by the previous service run",
                                slot.name, out.requeued_jobs, extra={"action": "dispatch"})
                    ctx.wakeup.notify(None)
            slot.last_beat = time.monotonic()
            self.refs[slot.name] = jobs.worker_ref(ctx.db, slot.name)

    def _has_worker_row(self, slot: Slot) -> bool:
        try:
            jobs.worker_ref(self.ctx.db, slot.name)
        except NotFound:
            return False
        return True

    def _reattach(self, slot: Slot) -> None:
        ctx = self.ctx
        slot.session, held = reattach(ctx.db, self.who, slot.name, slot.sutclass,
                                      ctx.settings, ctx.clock())
        for h in held:
            job = h.job
            ref = h.provider_ref or ""
            kind, _, slurm_id = ref.partition(":")
            reason = None
            if kind != "slurm" or not slurm_id or slot.running is not None:
                reason = "the service stopped before the job was handed to Slurm"
            else:
                handle = Handle(provider="slurm", ref=slurm_id)
                try:
                    slot.provider.status(handle)
                except ProviderError as exc:
                    reason = f"Slurm no longer knows job {slurm_id}: {exc}"
            if reason is not None:
                state = give_up(ctx.db, job.job_id, job.attempt, slot.name,
                                f"not re-attached after a service restart: {reason}",
                                ctx.settings, ctx.clock())
                log.warning("%s: job %s %s (%s)", slot.name, job.job_id, state.value, reason,
                            extra={"action": "dispatch"})
                ctx.wakeup.notify(None)
                continue
            pjob = ProviderJob(job_id=job.job_id, attempt=job.attempt, argv=["(re-attached)"],
                               timeout_s=job.timeout_s)
            assert isinstance(slot.provider, SlurmProvider)
            elapsed = max(0.0, ctx.clock() - (h.assigned_at or ctx.clock()))
            slot.running = Running(job=job, handle=handle,
                                   log_path=slot.provider.log_path(pjob),
                                   t0=time.monotonic() - elapsed, started=h.started)
            log.info("%s: re-attached job %s attempt %s to Slurm job %s", slot.name,
                     job.job_id, job.attempt, slurm_id, extra={"action": "dispatch"})

    def close(self) -> None:
        """End the SSH sessions (their jobs are requeued at the next start). Slurm jobs
        keep running: the next start re-attaches to them by their Slurm job id."""
        for slot in self.slots:
            run = slot.running
            if run is not None and isinstance(slot.provider, SlurmProvider):
                log.info("%s: leaving Slurm job %s (job %s) running for the next start",
                         slot.name, run.handle.ref, run.job.job_id,
                         extra={"action": "dispatch"})
        for prov in self._ssh:
            prov.__exit__(None, None, None)

    # --- one pass ----------------------------------------------------------------
    def tick(self) -> bool:
        """Poll, record, claim and kick off. Returns whether any job is running."""
        running = [s for s in self.slots if s.running is not None]
        views = job_views(self.ctx.db, [s.running.job.job_id for s in running
                                        if s.running is not None])
        for slot in self.slots:
            try:
                self._beat(slot)
                if slot.running is not None:
                    self._poll(slot, views.get(slot.running.job.job_id))
                if slot.running is None:
                    self._claim(slot)
            except (ProviderError, Conflict) as exc:
                log.warning("%s: %s", slot.name, exc, extra={"action": "dispatch"})
        return any(s.running is not None for s in self.slots)

    def _beat(self, slot: Slot) -> None:
        if time.monotonic() - slot.last_beat < self.ctx.settings.heartbeat_interval_s:
            return
        run = slot.running
        reply = workers.heartbeat(self.ctx.db, self.who, slot.name, Heartbeat(
            session=slot.session, job_id=run.job.job_id if run else None,
            attempt=run.job.attempt if run else None), self.ctx.clock())
        slot.last_beat = time.monotonic()
        if reply.abort and run is not None and run.cancel_reason is None:
            self._cancel(slot, run, f"the service ended the job: {reply.reason}")

    def _cancel(self, slot: Slot, run: Running, reason: str) -> None:
        run.cancel_reason = reason
        log.info("%s: cancelling job %s (%s)", slot.name, run.job.job_id, reason,
                 extra={"action": "dispatch"})
        slot.provider.cancel(run.handle)

    def _poll(self, slot: Slot, view: JobView | None) -> None:
        run = slot.running
        assert run is not None
        if view is not None and run.cancel_reason is None:
            if not view.state.active or view.attempt != run.job.attempt:
                self._cancel(slot, run, f"the service ended the job ({view.state.value})")
            elif view.cancel_requested:
                self._cancel(slot, run, "cancelled: its plan was cancelled")
        status = slot.provider.status(run.handle)
        ctx, job = self.ctx, run.job
        if not run.started and status.state is not ProviderState.PENDING:
            with contextlib.suppress(Conflict):
                reports.start(ctx.db, self.who, job.job_id,
                           JobStart(worker=slot.name, attempt=job.attempt), ctx.clock())
            run.started = True
        if not status.state.final:
            return
        slot.running = None
        text = _read_log(run.log_path)
        duration = time.monotonic() - run.t0
        if run.cancel_reason is not None and status.state is not ProviderState.COMPLETED:
            if view is not None and view.state.active:
                with contextlib.suppress(Conflict):
                    cancel_job(ctx.db, job.job_id, job.attempt, slot.name,
                               run.cancel_reason, text, ctx.settings.logs_dir, ctx.clock())
            return
        try:
            state = reports.finish(ctx.db, self.who, job.job_id,
                                result_of(status, text, slot.name, job.attempt, duration),
                                ctx.settings.logs_dir, ctx.clock())
        except Conflict as exc:  # requeued meanwhile and claimed again
            log.warning("%s: result of job %s dropped: %s", slot.name, job.job_id, exc)
            return
        log.info("%s: job %s %s", slot.name, job.job_id, state.value,
                 extra={"action": "dispatch"})
        keep_and_publish(ctx, job.job_id)

    def _claim(self, slot: Slot) -> None:
        ctx = self.ctx
        got = claims.claim(ctx.db, self.who, self.refs[slot.name], slot.session, ctx.settings,
                         ctx.clock())
        for lease_id in got.granted_leases:
            ctx.lease_events.notify_all(lease_id)
        job = got.job
        if job is None:
            return
        pjob = ProviderJob(job_id=job.job_id, attempt=job.attempt,
                           argv=[*slot.command, job.model_dump_json()],
                           timeout_s=job.timeout_s)
        try:
            handle = slot.provider.kickoff(pjob)
        except ProviderError as exc:
            reports.finish(ctx.db, self.who, job.job_id, JobResultIn(
                worker=slot.name, attempt=job.attempt, failed=True, duration_s=0.0,
                reasons=[f"cannot start the job on {slot.name}: {exc}"]),
                ctx.settings.logs_dir, ctx.clock())
            return
        record_handle(ctx.db, job.job_id, job.attempt, f"{handle.provider}:{handle.ref}")
        path = (slot.provider.log_path(pjob) if isinstance(slot.provider, SlurmProvider)
                else slot.provider.log_path(handle)
                if isinstance(slot.provider, SshProvider) else Path("/dev/null"))
        slot.running = Running(job=job, handle=handle, log_path=path)
        log.info("%s: job %s attempt %s started (%s %s)", slot.name, job.job_id,
                 job.attempt, handle.provider, handle.ref, extra={"action": "dispatch"})


def dispatched(classes: Sequence[AnySutClass]) -> bool:
    return any(c.enabled and c.dispatch is not Dispatch.PULL for c in classes)


async def run_dispatcher(d: Dispatcher, stop: asyncio.Event) -> None:
    """Tick on every wake-up of the dispatched classes (or plan-cancel), at most
    ``dispatch_poll_s`` apart while jobs run, until ``stop``; then cancel what runs."""
    ctx = d.ctx
    await anyio.to_thread.run_sync(d.open)
    keys = [*d.class_ids, DISPATCH_KEY]
    try:
        while not stop.is_set():
            futs: list[asyncio.Future[Any]] = [ctx.wakeup.subscribe(k) for k in keys]
            stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            waits = [*futs, stopper]
            try:
                try:
                    busy = await anyio.to_thread.run_sync(d.tick)
                except Exception:  # one bad pass must not stop dispatching
                    log.exception("dispatch pass failed", extra={"action": "dispatch"})
                    busy = True
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED,
                                   timeout=ctx.settings.dispatch_poll_s if busy
                                   else IDLE_POLL_S)
            finally:
                stopper.cancel()
                for key, fut in zip(keys, futs, strict=True):
                    ctx.wakeup.unsubscribe(key, fut)
    finally:
        await anyio.to_thread.run_sync(d.close)
