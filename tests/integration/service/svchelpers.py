"""Helpers for the service tests: bounded waits, clients, plans, a scripted worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from ktstr.contract import Assignment
from ktstr.results.model import Verdict
from ktstr.service.client import ServiceClient
from ktstr.service.schemas import JobResultIn, WorkerSession
from ktstr.testing import ServiceThread

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def admin(svc: ServiceThread) -> ServiceClient:
    assert svc.admin_token
    return ServiceClient(svc.url, svc.admin_token)


def user(svc: ServiceThread, name: str, caps: str) -> ServiceClient:
    with admin(svc) as a:
        created = a.create_user(name, caps.split(","))
    return ServiceClient(svc.url, created.token)


def plan_doc(*, sutclass: str = "demo", schedulers: int = 1, topologies: int = 1,
             repeats: int = 1, timeout: str = "1m", priority: int | None = None,
             name: str | None = None) -> dict[str, Any]:
    topos = ["1,1,2,1", "1,2,2,1", "1,1,4,1", "1,2,2,2", "1,4,2,1", "2,2,2,1"][:topologies]
    doc: dict[str, Any] = {
        "sut": {"sutclass": sutclass},
        "runs": [{"kernels": ["7.2"], "schedulers": [f"scx_{i}" for i in range(schedulers)],
                  "topologies": topos}],
        "defaults": {"timeout": timeout, "repeats": repeats, "duration": "1s"},
    }
    if priority is not None:
        doc["priority"] = priority
    if name:
        doc["name"] = name
    return doc


class FakeWorker:
    """Drives the worker protocol by hand, for tests that need each step."""

    def __init__(self, client: ServiceClient, name: str, sutclass: str = "demo") -> None:
        self.client, self.name, self.sutclass = client, name, sutclass
        self.session: WorkerSession = client.register(name, sutclass, "0.1.0")

    def claim(self, wait: float = 0.0) -> Assignment | None:
        return self.client.claim(self.name, self.session.session, wait)

    def heartbeat(self, job: Assignment | None = None) -> bool:
        reply = self.client.heartbeat(self.name, self.session.session,
                                      job.job_id if job else None,
                                      job.attempt if job else None)
        return reply.abort

    def start(self, job: Assignment) -> None:
        self.client.start_job(job.job_id, self.name, job.attempt)

    def finish(self, job: Assignment, outcome: Verdict = Verdict.PASS,
               duration: float = 1.0, **extra: Any) -> str:
        return self.client.report(job.job_id, JobResultIn(
            worker=self.name, attempt=job.attempt, outcome=outcome, duration_s=duration,
            log=f"log of {job.job_id}\n", **extra))

    def run(self, job: Assignment, **kw: Any) -> str:
        self.start(job)
        return self.finish(job, **kw)
