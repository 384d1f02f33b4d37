"""Job and plan state tables, ETA, usage and SUT class files (all pure)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ktstr.service.db.sutclasses import busy_share
from ktstr.service.eta import PendingJob, plan_eta
from ktstr.service.states import (
    JOB_TRANSITIONS,
    InvalidTransition,
    JobState,
    PlanState,
    plan_state_for,
    require_job_transition,
    require_plan_transition,
)
from ktstr.service.sutclasses import SutClassesError, parse_sutclasses


def test_lifecycle_edges() -> None:
    path = [JobState.QUEUED, JobState.ASSIGNED, JobState.RUNNING, JobState.COMPLETED]
    for a, b in itertools.pairwise(path):
        require_job_transition("job 1", a, b)
    for terminal in (JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT,
                     JobState.CANCELLED):
        assert terminal.terminal and not JOB_TRANSITIONS[terminal]
    assert JobState.QUEUED in JOB_TRANSITIONS[JobState.RUNNING]  # requeue of a lost worker


def test_invalid_transition_names_actual_and_required() -> None:
    with pytest.raises(InvalidTransition) as err:
        require_job_transition("job 7", JobState.QUEUED, JobState.RUNNING)
    assert str(err.value) == "job 7 is queued; moving to running needs it to be one of: assigned"
    with pytest.raises(InvalidTransition, match="plan 2 is completed; moving to cancelled "
                                                "needs it to be one of: queued, running"):
        require_plan_transition("plan 2", PlanState.COMPLETED, PlanState.CANCELLED)


def test_plan_state_from_jobs() -> None:
    assert plan_state_for({JobState.QUEUED: 3}, False) is PlanState.QUEUED
    assert plan_state_for({JobState.QUEUED: 2, JobState.RUNNING: 1}, False) is \
        PlanState.RUNNING
    assert plan_state_for({JobState.COMPLETED: 2, JobState.FAILED: 1}, False) is \
        PlanState.COMPLETED
    assert plan_state_for({JobState.RUNNING: 1, JobState.CANCELLED: 2}, True) is \
        PlanState.CANCELLED


def test_eta() -> None:
    pending = [PendingJob(cell_key="a", timeout_s=600, state=JobState.QUEUED),
               PendingJob(cell_key="b", timeout_s=600, state=JobState.QUEUED),
               PendingJob(cell_key="a", timeout_s=600, state=JobState.RUNNING,
                          started_at=100.0)]
    # a: 30s known (the running one has 10s left), b: unknown -> its timeout
    assert plan_eta(pending, {"a": 30.0}, suts=2, now=120.0) == (30 + 600 + 10) / 2
    assert plan_eta([], {}, suts=0, now=0) == 0


def test_busy_share() -> None:
    intervals = [(0.0, 50.0), (25.0, None), (-10.0, 5.0)]
    # window [0, 100) on 2 SUTs = 200 SUT-seconds; busy 50 + 75 + 5 (open one up to now)
    assert busy_share(intervals, 2, 0, 100, now=100) == pytest.approx(130 / 200)
    assert busy_share([], 2, 0, 0, now=0) == 0


SEED = """\
- sutclass: demo
  type: static
  params:
    suts:
      - name: demo-01
        connection:
          method: SSH
          params: {host: demo-01, user: fpuser, keyfile: /path/to/id_ed25519}
      - name: demo-02
        connection:
          method: SSH
          params: {host: demo-02, user: fpuser, keyfile: /path/to/id_ed25519}
"""


def test_seed_sutclasses_parse() -> None:
    (demo,) = parse_sutclasses(SEED, Path("s.yaml"))
    assert demo.sutclass == "demo" and demo.sut_names == ["demo-01", "demo-02"]
    assert demo.params.suts[0].connection.params["user"] == "fpuser"


@pytest.mark.parametrize(("text", "expected"), [
    ("- [", "s.yaml: not valid YAML"),
    ("sutclass: demo", "s.yaml: expected a list of SUT classes"),
    (SEED.replace("type: static", "type: dynamic"), "s.yaml: entry 0 (demo): type:"),
    (SEED.replace("      - name: demo-02\n", "      - nome: demo-02\n"),
     "s.yaml: entry 0 (demo): params.suts[1].name: is required"),
    (SEED.replace("demo-02", "demo-01"), "s.yaml: entry 0 (demo): params"),
    (SEED + SEED.replace("demo-0", "x-0"), "s.yaml: sutclass 'demo' is defined twice"),
])
def test_sutclasses_errors_name_file_entry_field(text: str, expected: str) -> None:
    with pytest.raises(SutClassesError) as err:
        parse_sutclasses(text, Path("s.yaml"))
    assert any(line.startswith(expected) for line in str(err.value).splitlines()), str(err.value)
