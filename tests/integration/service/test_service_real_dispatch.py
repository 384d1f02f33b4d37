"""One real cell through each service-side dispatch path: the service runs
``python -m ktstr.worker.runcell`` (the real ``KtstrRunner``: ``ktstr run`` boots kernel 7.2
in QEMU with scx_simple) over ssh to the test sshd on 127.0.0.1, and as a Slurm batch job
on the test slurmctld/slurmd; each verdict is PASS and reaches the result store."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from slurmctl import SlurmCluster, slurm_missing
from sshd import SSHD, Sshd
from svchelpers import admin, wait_until

from ktstr.results.model import Verdict
from ktstr.service.resultstore import ResultQuery, ResultStore
from ktstr.service.settings import Settings
from ktstr.service.states import JobState, PlanState
from ktstr.testing import ServiceThread

RUNCELL = [sys.executable, "-m", "ktstr.worker.runcell", "--runner", "ktstr"]
PLAN = {"runs": [{"kernels": ["7.2"], "schedulers": ["scx_simple"],
                  "topologies": ["1,1,2,1"]}],
        "defaults": {"timeout": "5m", "duration": "3s"}}


def _run_one(tmp_path: Path, sutclasses: list[dict[str, Any]], sutclass: str,
             worker: str) -> None:
    path = tmp_path / "sutclasses.yaml"
    path.write_text(yaml.safe_dump(sutclasses))
    store = f"sqlite:///{tmp_path / 'results.db'}"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'scheduler.db'}",
                        storage=tmp_path / "storage", sutclasses=path, resultstore=store,
                        timeout_slack_s=60)
    with ServiceThread(settings) as svc, admin(svc) as a:
        plan = a.submit_plan({"sut": {"sutclass": sutclass}, **PLAN})
        wait_until(lambda: a.plan(plan.id).state is PlanState.COMPLETED, 480,
                   f"the real cell to finish through {sutclass}", interval=1)
        (job,) = a.jobs(plan.id)
        log = a.job_log(job.id)
    assert job.state is JobState.COMPLETED, (job, log[-3000:])
    assert job.outcome is Verdict.PASS, (job.reasons, log[-3000:])
    assert job.worker == worker and job.attempt == 1
    assert "ktstr run --kernel 7.2 --scheduler scx_simple --topology 1,1,2,1 " \
           "--duration 3s --json" in log
    with ResultStore(store) as rs:
        rows = rs.query(ResultQuery(plan_id=plan.id))
    assert [(r.job_id, r.outcome, r.kernel, r.scheduler, r.topology, r.worker)
            for r in rows] == [(job.id, Verdict.PASS, "7.2", "scx_simple", "1,1,2,1", worker)]
    assert rows[0].details["report"]["verdict"].lower() == "pass"


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if not SSHD.exists() or os.geteuid() != 0:
        pytest.skip("needs /usr/sbin/sshd (openssh-server) and root")
    with Sshd(tmp_path / "sshd") as server:
        yield server


@pytest.mark.vm
def test_real_cell_over_ssh_dispatch(tmp_path: Path, sshd: Sshd) -> None:
    t = sshd.target
    conn = {"host": t.host, "port": t.port, "user": t.user, "keyfile": str(t.keyfile),
            "options": t.options}
    _run_one(tmp_path, [{"sutclass": "sshlab", "type": "static",
                         "params": {"dispatch": "ssh", "command": RUNCELL,
                                    "suts": [{"name": "ssh-01", "connection": {
                                        "method": "SSH", "params": conn}}]}}],
             "sshlab", "ssh-01")


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[SlurmCluster]:
    why = slurm_missing()
    if why:
        pytest.skip(f"Slurm cannot run here: {why}")
    cluster = SlurmCluster(tmp_path / "slurm").__enter__()
    try:
        yield cluster
    finally:
        cluster.__exit__(None, None, None)


@pytest.mark.vm
def test_real_cell_through_slurm_dispatch(tmp_path: Path, slurm: SlurmCluster) -> None:
    _run_one(tmp_path, [{"sutclass": "cluster", "type": "slurm",
                         "params": {"partition": "debug", "max_jobs": 1,
                                    "slurm_conf": str(slurm.conf),
                                    "spool": str(tmp_path / "slurm-spool"),
                                    "command": RUNCELL}}],
             "cluster", "cluster.1")
