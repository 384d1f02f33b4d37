"""Sidecar JSON per test variant, and the session summary read back from them.

A ``Sidecar`` is one variant's record: its pytest outcome, the variant, and the
``RunResult`` of every run it made (without the console tail and scheduler log, which
stay in the run directory). The plugin writes one per variant and reads them back, typed,
for the summary at the end of the session (pytest-xdist workers write their own).
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ktstr.results.model import (
    CheckOutcome,
    KernelFacts,
    ReproStatus,
    RunResult,
    Timings,
    Verdict,
)
from ktstr.testkit.summary import SIDECAR_SUFFIX
from ktstr.testkit.variants import Variant

SUFFIX = SIDECAR_SUFFIX  # defined with the light reader that the summary uses
#: a run's fields that sidecars leave out (long; kept in the run directory)
_RUN_EXCLUDE = {"console_tail", "sched_log"}


class PytestOutcome(enum.StrEnum):
    """What pytest reports for a variant (an expected failure is ``passed``)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Sidecar(BaseModel):
    """One variant's record. The fields taken from its last run are None (or empty)
    when it ran nothing (a host too small for it, a body that never ran)."""

    # read back leniently: a newer ktstr's extra fields are ignored
    model_config = ConfigDict(frozen=True, extra="ignore")

    test: str  # the pytest node id
    variant: str = ""
    outcome: PytestOutcome | None = None
    message: str = ""
    gauntlet: bool = False
    preset: str | None = None
    topology_requested: str | None = None
    topology_seen: str | None = None
    flags: str | None = None
    kernel: KernelFacts = Field(default_factory=KernelFacts)
    scheduler: str | None = None
    verdict: Verdict | None = None
    #: a run failed, but its traced rerun did not fail the same way
    flaky: bool = False
    repro: ReproStatus | None = None
    reasons: list[str] = Field(default_factory=list)
    checks: list[CheckOutcome] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    timings: Timings | None = None
    console_path: str | None = None
    run_dir: str | None = None
    reproducer: str | None = None
    runs: list[RunResult] = Field(default_factory=list)

    @classmethod
    def of(cls, nodeid: str, variant: Variant, results: list[RunResult],
           outcome: PytestOutcome, message: str) -> Sidecar:
        last = results[-1] if results else None
        return cls(
            test=nodeid, variant=variant.id, outcome=outcome, message=message,
            gauntlet=variant.gauntlet, preset=variant.preset,
            topology_requested=variant.topology.label,
            topology_seen=last.topology_seen if last else None,
            flags=variant.flags.name,
            kernel=last.kernel if last else KernelFacts(spec=variant.kernel.spec or ""),
            scheduler=last.scheduler if last else None,
            verdict=last.verdict if last else None,
            flaky=any(r.flaky for r in results),
            repro=last.repro.status if last and last.repro else None,
            reasons=list(last.reasons) if last else [],
            checks=list(last.checks) if last else [],
            stats=dict(last.stats) if last else {},
            timings=last.timings if last else None,
            console_path=last.console_path if last else None,
            run_dir=last.run_dir if last else None,
            reproducer=last.reproducer if last else None,
            runs=list(results),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON document (what a sidecar file holds)."""
        return self.model_dump(mode="json", exclude={"runs": {"__all__": _RUN_EXCLUDE}})


def sidecar_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")[:200] + SUFFIX


def write_sidecar(results_dir: Path, sidecar: Sidecar) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / sidecar_name(sidecar.test)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(sidecar.model_dump_json(
        indent=2, exclude={"runs": {"__all__": _RUN_EXCLUDE}}), encoding="utf-8")
    tmp.replace(path)
    return path


def read_sidecars(results_dir: Path, since: float = 0.0) -> list[Sidecar]:
    """The sidecars written since ``since`` (a file that is not one is left out)."""
    out: list[Sidecar] = []
    if not results_dir.is_dir():
        return out
    for path in sorted(results_dir.glob("*" + SUFFIX)):
        if path.stat().st_mtime < since:
            continue
        try:
            out.append(Sidecar.model_validate_json(path.read_bytes()))
        except (OSError, ValueError):
            continue
    return out
