"""When a cell fails, rerun it once with a scheduling trace: the one place that decides.

Every path that runs a cell (``ktstr run``, ``ctx.run`` in the pytest plugin, the
gauntlet, the service's ``ktstr run --json``) goes through ``run_scheduler``, which runs
the cell and hands the result to ``with_repro``. On a FAIL (unless the request says
``repro=False``: ``--no-repro``), ``with_repro`` runs the same cell again, with the same
time bounds, plus a tracefs trace (``TRACE_EVENTS`` in a bounded per-CPU ring buffer, the
text capped) and the scheduler's own ``verbose_args``; the rerun's directory is
``<run dir>/repro`` with ``trace.txt`` (raw) and ``trace.json`` (Chrome trace events).
The result says whether the failure reproduced (the same ``FailureClass``) or was flaky.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from ktstr.guest.protocol import Event, TracePlan
from ktstr.results.model import (
    FailureClass,
    Repro,
    ReproStatus,
    RunResult,
    SchedOutcome,
    TraceSummary,
    Verdict,
    VmOutcome,
)
from ktstr.results.trace import (
    TRACE_EVENTS,
    chrome_trace,
    failure_instant,
    failure_window,
    parse_trace,
    runnable_since,
    stalled_task,
)
from ktstr.run.request import RunRequest

log = logging.getLogger(__name__)

#: per-CPU ring buffer of a repro run's trace (overwrite mode: the newest seconds stay)
TRACE_BUFFER_KB = 4096
#: the most trace text a repro run sends back (its tail)
TRACE_CAP_BYTES = 32 << 20
#: the seconds before the failure the report draws
WINDOW_S = 3.0
STALL_REASON = "runnable task stall"

RunOnce = Callable[[RunRequest, Callable[[str], None]], RunResult]


def trace_plan() -> TracePlan:
    return TracePlan(events=list(TRACE_EVENTS), buffer_kb=TRACE_BUFFER_KB,
                     cap_bytes=TRACE_CAP_BYTES)


def failure_class(result: RunResult) -> FailureClass | None:
    """The kind of a FAIL (None for any other verdict)."""
    if result.verdict is not Verdict.FAIL:
        return None
    if result.vm_outcome is VmOutcome.CRASHED:
        return FailureClass.CRASHED
    return {
        SchedOutcome.DIED: FailureClass.DIED,
        SchedOutcome.EJECTED: (FailureClass.STALLED if result.ejection_reason == STALL_REASON
                               else FailureClass.EJECTED),
        SchedOutcome.NOT_ATTACHED: FailureClass.NOT_ATTACHED,
        SchedOutcome.UNCLEAN_STOP: FailureClass.UNCLEAN_STOP,
    }.get(result.sched_outcome, FailureClass.CHECK_FAILED)


def wants_repro(request: RunRequest, result: RunResult) -> bool:
    """The decision: a FAIL of a run that is not itself traced, unless turned off."""
    return request.repro and request.trace is None and result.verdict is Verdict.FAIL


def repro_request(request: RunRequest, run_dir: Path) -> RunRequest:
    """The same cell, traced, verbose, without the one-shot fault, never repro'd again."""
    return request.model_copy(update={
        "repro": False, "trace": trace_plan(), "one_shot_sched_args": (),
        "extra_sched_args": (*request.extra_sched_args, *request.scheduler.verbose_args),
        "run_dir": run_dir, "keep": True,
    })


def repro_status(first: FailureClass, rerun: RunResult) -> ReproStatus:
    if rerun.verdict in (Verdict.ERROR, Verdict.SKIP):
        return ReproStatus.NO_VERDICT
    return (ReproStatus.REPRODUCED if failure_class(rerun) is first else ReproStatus.FLAKY)


def with_repro(request: RunRequest, result: RunResult, run_once: RunOnce,
               progress: Callable[[str], None]) -> RunResult:
    """``result`` with its traced rerun attached when ``wants_repro`` says so."""
    first = failure_class(result)
    if not wants_repro(request, result) or first is None:
        return result
    base = Path(result.run_dir) if result.run_dir else None
    if base is None:
        return result
    progress(f"{result.summary_line()}")
    progress(f"reproducing with a scheduling trace in {base / 'repro'} (--no-repro: off)")
    rerun = run_once(repro_request(request, base / "repro"), progress)
    status = repro_status(first, rerun)
    repro = Repro(status=status, first_class=first, repro_verdict=rerun.verdict,
                  repro_class=failure_class(rerun), reasons=rerun.reasons,
                  ejection_reason=rerun.ejection_reason, run_dir=rerun.run_dir,
                  trace=rerun.trace)
    notes = list(result.notes)
    if status is ReproStatus.FLAKY:
        notes.append(f"flaky: the traced rerun was {rerun.verdict.value.upper()}"
                     + (f" ({repro.repro_class.value})" if repro.repro_class else "")
                     + f", not {first.value}")
    elif status is ReproStatus.NO_VERDICT:
        notes.append(f"the traced rerun ended {rerun.verdict.value.upper()}: "
                     + "; ".join(rerun.reasons[:2]))
    progress(f"repro: {status.value}")
    return result.model_copy(update={"repro": repro, "notes": notes})


def _fields(events: list[Event], name: str) -> dict[str, str]:
    for e in events:
        if e.name == name:
            return dict(e.fields)
    return {}


def write_trace(run_dir: Path, text: str, events: list[Event], *, sched_log: str,
                kernel_log: str, reason: str, title: str) -> TraceSummary:
    """The raw text as ``trace.txt``, the Chrome trace as ``trace.json``, and what the
    result says about them."""
    raw = run_dir / "trace.txt"
    raw.write_bytes(text.encode("utf-8", "surrogateescape"))
    trace = parse_trace(text)
    stalled = stalled_task(sched_log, kernel_log)
    doc = chrome_trace(trace, title=title, stalled=stalled, reason=reason)
    js = run_dir / "trace.json"
    js.write_text(json.dumps(doc), encoding="utf-8")
    fail = failure_instant(trace)
    started = _fields(events, "trace_started")
    read = _fields(events, "trace_read")
    return TraceSummary(
        text_path=str(raw), json_path=str(js),
        enabled=started.get("enabled", "").split(), missing=started.get("missing", "").split(),
        clock=started.get("clock", ""),
        buffer_kb=int(started["buffer_kb"]) if started.get("buffer_kb", "").isdigit() else None,
        bytes_total=int(read["bytes"]) if read.get("bytes", "").isdigit() else None,
        bytes_sent=int(read["sent"]) if read.get("sent", "").isdigit() else None,
        events=len(trace.events), lost=trace.lost,
        failure_t=fail.t if fail else None, failure_cpu=fail.cpu if fail else None,
        failure_source=fail.source.value if fail else "", stalled=stalled,
        exit_site=fail.site if fail else None,
        stalled_since=(runnable_since(trace, stalled.pid, fail.t)
                       if stalled is not None and fail is not None else None),
        window=failure_window(trace, seconds=WINDOW_S, stalled=stalled),
    )
