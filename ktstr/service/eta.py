"""Plan ETA (pure): the remaining work of a plan, spread over its class's SUTs.

Each unfinished job is expected to take the mean recorded duration of the same cell
(any plan), or its timeout when the cell has never completed; a running job has its
elapsed time subtracted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ktstr.declare.base import Frozen
from ktstr.service.states import JobState


class PendingJob(Frozen):
    cell_key: str
    timeout_s: float
    state: JobState
    started_at: float | None = None


def plan_eta(pending: Iterable[PendingJob], history: Mapping[str, float], suts: int,
             now: float) -> float:
    """Seconds until the plan is expected to finish (0 when nothing is left)."""
    work = 0.0
    for job in pending:
        expected = history.get(job.cell_key, job.timeout_s)
        if job.state.active and job.started_at is not None:
            expected = max(expected - (now - job.started_at), 0.0)
        work += expected
    return math.ceil(work / max(suts, 1) * 10) / 10
