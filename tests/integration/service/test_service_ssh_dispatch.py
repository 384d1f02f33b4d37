"""SSH end to end through the service: a ``dispatch: ssh`` class whose one SUT is a real
sshd on 127.0.0.1; the service claims, runs the job over ssh (the scripted runner via
``python -m ktstr.worker.runcell``), records the result; plan-cancel kills the remote
process group."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sshd import SSHD, Sshd
from svchelpers import admin, plan_doc, wait_until

from ktstr.results.model import Verdict
from ktstr.service.states import JobState, PlanState
from ktstr.testing import ServiceThread

pytestmark = pytest.mark.skipif(not SSHD.exists() or os.geteuid() != 0,
                                reason="needs /usr/sbin/sshd (openssh-server) and root")

SCRIPT = {"default": {"seconds": 0.2}, "schedulers": {"scx_slow": {"seconds": 300}}}


def runcell_command(script: dict[str, Any]) -> list[str]:
    """The cheapest honest remote command: this repo's interpreter running the scripted
    runner through the dispatched-job entry point."""
    return [sys.executable, "-m", "ktstr.worker.runcell", "--runner", "scripted",
            "--script", json.dumps(script)]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def sutclasses_file(tmp_path: Path, sshd: Sshd) -> Path:
    t = sshd.target
    conn = {"host": t.host, "port": t.port, "user": t.user, "keyfile": str(t.keyfile),
            "options": t.options}
    doc = [{"sutclass": "sshlab", "type": "static",
            "params": {"dispatch": "ssh", "command": runcell_command(SCRIPT),
                       "suts": [{"name": "ssh-01",
                                 "connection": {"method": "SSH", "params": conn}}]}}]
    path = tmp_path / "sutclasses.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_plan_runs_over_ssh_through_the_service(service: ServiceThread) -> None:
    with admin(service) as c:
        plan = c.submit_plan(plan_doc(sutclass="sshlab", schedulers=2))
        assert plan.total_jobs == 2
        done = wait_until(lambda: (p := c.plan(plan.id)).state is PlanState.COMPLETED and p,
                          60, "the plan to complete over ssh")
        jobs = c.jobs(plan.id)
        assert done.outcomes == {Verdict.PASS: 2}
        assert all(j.state is JobState.COMPLETED and j.worker == "ssh-01" and j.attempt == 1
                   for j in jobs), jobs
        for j in jobs:
            text = c.job_log(j.id)
            assert f"scripted run of job {j.id}" in text and "ktstr-result" in text


def test_plan_cancel_kills_the_remote_process_group(service: ServiceThread) -> None:
    doc = plan_doc(sutclass="sshlab")
    doc["runs"][0]["schedulers"] = ["scx_slow"]
    logs = service.settings.storage.resolve() / "dispatch" / "sshlab" / "ssh-01"
    with admin(service) as c:
        plan = c.submit_plan(doc)
        (job,) = wait_until(lambda: [j for j in c.jobs(plan.id)
                                     if j.state is JobState.RUNNING], 30, "a running job")
        log = logs / f"job-{job.id}-1.log"

        def remote_pid() -> int | None:
            if not log.exists():
                return None
            for line in log.read_text().splitlines():
                if line.startswith("ktstr-runcell pid "):
                    return int(line.split()[-1])
            return None

        pid = wait_until(remote_pid, 30, "the remote runcell to start")
        assert Path(f"/proc/{pid}").exists()
        c.cancel_plan(plan.id)
        (ended,) = wait_until(lambda: [j for j in c.jobs(plan.id) if j.state.terminal],
                              30, "the job to end")
        assert ended.state is JobState.CANCELLED, ended
        assert ended.reasons == ["cancelled: its plan was cancelled"]

        def gone() -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
            except FileNotFoundError:
                return True

        wait_until(gone, 15, "the remote process to be killed")
        assert c.plan(plan.id).state is PlanState.CANCELLED
