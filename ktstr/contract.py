"""The messages the service and a worker exchange, and nothing else.

The service sends an ``Assignment`` (a claimed job: its ``Cell``); the worker's runner
answers with a ``JobResult`` whose ``outcome`` is a ``Verdict`` (``ktstr.results.model``,
the one verdict enum a run, a sweep cell and a job share). A job run over ssh or in a
Slurm batch (``ktstr.worker.runcell``) prints its result last as a ``ktstr-result
{JSON}`` line: ``result_line`` writes it, ``parse_result`` reads it back.

Both ``ktstr.service`` and ``ktstr.worker`` import this module; it imports neither, so
either side can change without reaching into the other.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.results.model import Verdict

RESULT_TAG = "ktstr-result"


class CellKind(enum.StrEnum):
    TEST = "test"
    VERIFIER = "verifier"


class Cell(Frozen):
    """One job: what the worker runs."""

    kind: CellKind
    kernel: str
    scheduler: str
    topology: str  # N,L,C,T
    topology_label: str
    preset: str | None = None
    test: str | None = None
    repeat: int
    duration_s: float
    timeout_s: float

    @property
    def key(self) -> str:
        """Identifies the cell across plans and repeats (ETA history)."""
        return "|".join((self.kind.value, self.kernel, self.scheduler, self.topology_label,
                         self.test or "-", f"{self.duration_s:g}"))


class Assignment(Frozen):
    """A job the service gave a worker."""

    job_id: int
    plan_id: int
    attempt: int
    cell: Cell
    timeout_s: float = Field(description="declared timeout plus the service's slack")


class JobResult(Frozen):
    """What a runner reports. ``failed`` means no verdict could be produced (the runner
    or the machinery broke); otherwise ``outcome`` is the cell's verdict."""

    outcome: Verdict | None = None  # the job's verdict; None when ``failed``
    failed: bool = False
    reasons: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    details: dict[str, Any] = Field(default_factory=dict)
    log: str = ""


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
