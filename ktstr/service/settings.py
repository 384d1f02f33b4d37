"""Service settings: built once at the entry point (CLI or test) and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ktstr.declare.base import Frozen

#: bumped when the worker <-> service protocol changes incompatibly
PROTOCOL_VERSION = 1


class Settings(Frozen):
    database_url: str = "sqlite:///scheduler.db"
    storage: Path = Path("sched_storage")
    sutclasses: Path = Path("sutclasses.yaml")
    resultstore: str | None = None
    #: added to a job's declared timeout before it is ended as timed_out (seed: 5 min)
    timeout_slack_s: float = Field(300.0, ge=0)
    #: a worker silent this long is lost and its job requeued
    heartbeat_timeout_s: float = Field(30.0, gt=0)
    #: a job whose worker is lost this many times fails instead of requeueing
    max_tries: int = Field(3, ge=1)
    #: how often the reaper looks for lost workers and overdue jobs
    reaper_interval_s: float = Field(1.0, gt=0)
    #: longest a claim long-poll may wait
    max_claim_wait_s: float = Field(30.0, ge=0)
    #: an acquired lease not renewed for this long expires and its SUT returns to the pool
    lease_max_s: float = Field(4 * 3600.0, gt=0)
    #: a queued lease whose ``--wait`` client has not polled for its long-poll plus this
    #: long is cancelled (the client was interrupted or lost)
    lease_poll_grace_s: float = Field(15.0, gt=0)
    #: how often the dispatcher polls a running SSH/Slurm job's status
    dispatch_poll_s: float = Field(0.5, gt=0)
    #: the largest file a plan may upload (413 above it)
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1)

    @property
    def heartbeat_interval_s(self) -> float:
        return self.heartbeat_timeout_s / 3

    @property
    def logs_dir(self) -> Path:
        return self.storage / "logs"

    @property
    def files_dir(self) -> Path:
        """Uploaded files, content-addressed."""
        return self.storage / "files"

    @property
    def results_dir(self) -> Path:
        """Every job's result record and console log, a JSON line each in a file per
        day (``ktstr.service.storage.keep_job_result``)."""
        return self.storage / "results"
