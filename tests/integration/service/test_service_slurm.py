"""Slurm for real: a single-node slurmctld + slurmd (started here) behind a ``type: slurm``
class; the service sbatches the job (the scripted runner via ``ktstr.worker.runcell``),
follows it with scontrol, and cancels it with scancel."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from slurmctl import SlurmCluster, slurm_missing
from svchelpers import admin, plan_doc, wait_until

from ktstr.results.model import Verdict
from ktstr.service.client import ServiceClient
from ktstr.service.schemas import JobOut
from ktstr.service.states import JobState, PlanState
from ktstr.testing import ServiceThread

SCRIPT = {"default": {"seconds": 0.2}, "schedulers": {"scx_slow": {"seconds": 300}}}


def _script(tmp_path: Path) -> dict[str, object]:
    """``scx_gated`` runs until the test creates its gate file (at most 10 minutes)."""
    return {**SCRIPT, "schedulers": {
        **SCRIPT["schedulers"],  # type: ignore[dict-item]
        "scx_gated": {"seconds": 600, "until_file": str(tmp_path / "gate")}}}


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    why = slurm_missing()
    if why:
        pytest.skip(f"Slurm cannot run here: {why}")
    root = tmp_path_factory.mktemp("slurm")
    try:
        cluster = SlurmCluster(root).__enter__()
    except AssertionError as exc:  # the exact failure, daemon logs included
        pytest.skip(f"Slurm did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def db_url(tmp_path: Path) -> str:  # Slurm is the subject here; SQLite is enough
    return f"sqlite:///{tmp_path / 'scheduler.db'}"


@pytest.fixture
def sutclasses_file(tmp_path: Path, slurm: SlurmCluster) -> Path:
    command = [sys.executable, "-m", "ktstr.worker.runcell", "--runner", "scripted",
               "--script", json.dumps(_script(tmp_path))]
    doc = [{"sutclass": "cluster", "type": "slurm",
            "params": {"partition": "debug", "max_jobs": 2, "slurm_conf": str(slurm.conf),
                       "spool": str(tmp_path / "slurm-spool"), "command": command}}]
    path = tmp_path / "sutclasses.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _slow_plan(c: ServiceClient) -> int:
    doc = plan_doc(sutclass="cluster")
    doc["runs"][0]["schedulers"] = ["scx_slow"]
    return c.submit_plan(doc).id


def _running(c: ServiceClient, plan_id: int) -> JobOut:
    (job,) = wait_until(lambda: [j for j in c.jobs(plan_id) if j.state is JobState.RUNNING],
                        60, "the Slurm job to run")
    return job


def _slurm_id(slurm: SlurmCluster, job: JobOut) -> str:
    return wait_until(lambda: slurm.run("squeue", "--noheader", "--format=%i",
                                        f"--name=ktstr-{job.id}-{job.attempt}").strip(),
                      30, "the job in squeue")


def _ended(c: ServiceClient, plan_id: int) -> JobOut:
    (job,) = wait_until(lambda: [j for j in c.jobs(plan_id) if j.state.terminal], 60,
                        "the job to end")
    return job


def test_plan_runs_through_sbatch(service: ServiceThread, slurm: SlurmCluster) -> None:
    with admin(service) as c:
        plan = c.submit_plan(plan_doc(sutclass="cluster", schedulers=2))
        done = wait_until(lambda: (p := c.plan(plan.id)).state is PlanState.COMPLETED and p,
                          60, "the plan to complete through Slurm")
        assert done.outcomes == {Verdict.PASS: 2}
        jobs = c.jobs(plan.id)
        assert {j.worker for j in jobs} <= {"cluster.1", "cluster.2"}
        for j in jobs:
            text = c.job_log(j.id)
            assert f"ktstr job {j.id} on {slurm.host}" in text  # the kickoff script ran
            assert f"scripted run of job {j.id}" in text


def test_scancel_outside_ktstr_fails_the_job(service: ServiceThread,
                                             slurm: SlurmCluster) -> None:
    with admin(service) as c:
        plan_id = _slow_plan(c)
        slurm.run("scancel", _slurm_id(slurm, _running(c, plan_id)))
        job = _ended(c, plan_id)
    assert job.state is JobState.FAILED
    assert any("cancelled outside ktstr" in r for r in job.reasons), job.reasons


def test_plan_cancel_scancels_the_slurm_job(service: ServiceThread,
                                            slurm: SlurmCluster) -> None:
    with admin(service) as c:
        plan_id = _slow_plan(c)
        slurm_id = _slurm_id(slurm, _running(c, plan_id))
        c.cancel_plan(plan_id)
        job = _ended(c, plan_id)
    assert job.state is JobState.CANCELLED and job.reasons == [
        "cancelled: its plan was cancelled"]
    state = slurm.run("scontrol", "show", "job", "--oneliner", slurm_id)
    assert "JobState=CANCELLED" in state, state


def test_restart_reattaches_to_the_slurm_job(make_service: Callable[..., Any],
                                             slurm: SlurmCluster, tmp_path: Path) -> None:
    """The service stops while its Slurm job runs: the job is left running, and the
    next start follows the same Slurm job (same attempt, no requeue) to its result."""
    with make_service() as svc, admin(svc) as c:
        token = svc.admin_token
        doc = plan_doc(sutclass="cluster")
        doc["runs"][0]["schedulers"] = ["scx_gated"]
        plan_id = c.submit_plan(doc).id
        job = _running(c, plan_id)
        slurm_id = _slurm_id(slurm, job)
    # the service is gone; its Slurm job is not
    state = slurm.run("scontrol", "show", "job", "--oneliner", slurm_id)
    assert "JobState=RUNNING" in state, state
    assert token
    with make_service() as again, ServiceClient(again.url, token) as c:
        assert again.admin_token is None  # same database
        (held,) = c.jobs(plan_id)
        assert held.state is JobState.RUNNING and held.attempt == 1, held
        (tmp_path / "gate").touch()
        done = _ended(c, plan_id)
        text = c.job_log(done.id)
    assert done.state is JobState.COMPLETED and done.outcome is Verdict.PASS, done
    assert done.attempt == 1 and done.worker == job.worker
    assert text.count(f"ktstr job {job.id} on {slurm.host}") == 1  # one sbatch, not two
    assert "JobState=COMPLETED" in slurm.run("scontrol", "show", "job", "--oneliner",
                                             slurm_id)
