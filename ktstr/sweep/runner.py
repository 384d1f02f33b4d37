"""The local parallel runner shared by the verifier sweep and the gauntlet.

A sweep is a list of cells (``SweepCell`` subclasses: an ``id`` and a ``cost`` in host
CPUs) and one function that runs a cell and returns its ``CellResult``. ``run_cells``
starts cells in order while their costs fit in the CPU budget, writes each result to the
``ResultStore`` the moment it completes (an interrupted sweep loses nothing), turns an
exception escaping a cell into an ERROR cell and carries on, and with ``resume`` skips
the cells already finished in the store.

Budget policy (see docs/verifier.md): the budget defaults to the host CPUs; a cell costs
the host CPUs its work keeps busy (a gauntlet cell its vCPUs: under TCG a VM of V vCPUs
running a workload keeps V host threads busy; a verifier cell one), capped at the budget
(so a VM larger than the host still runs, alone); raise ``--cpu-budget`` to overcommit
deliberately.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
import traceback
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import Field, ValidationError

from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.kernel.id import sanitize_label
from ktstr.results.model import Verdict

log = logging.getLogger(__name__)


class SweepCell(Frozen):
    """One unit of a sweep. Subclasses define ``id`` (stable, ``/``-separated) and
    ``cost`` (host CPUs it occupies while running)."""

    @property
    @abstractmethod
    def id(self) -> str:
        """Stable, ``/``-separated cell id."""

    @property
    def cost(self) -> int:
        return 1


class CellResult(Frozen):
    """A finished cell. ``cell`` is the cell's own JSON (so ``--resume`` can tell a
    changed cell from a finished one); ``detail`` is the sweep kind's payload."""

    id: str
    kind: str
    outcome: Verdict  # ERROR is the harness's failure, not the scheduler's
    reasons: list[str] = Field(default_factory=list)
    cell: dict[str, Any] = Field(default_factory=dict)
    detail: dict[str, Any] = Field(default_factory=dict)
    started_at: dt.datetime | None = None
    duration_s: float = 0.0
    resumed: bool = False


C = TypeVar("C", bound=SweepCell)


def cell_file_name(cell_id: str) -> str:
    """``verifier/scx_simple/7.2.13/tiny-1llc`` -> ``verifier__scx_simple__7.2.13__tiny-1llc``."""
    return "__".join(sanitize_label(part) for part in cell_id.split("/")) + ".json"


class ResultStore:
    """A sweep directory: ``cells/<id>.json`` per finished cell, ``logs/<id>/`` for
    whatever a cell keeps (verifier logs, consoles)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cells_dir = root / "cells"

    def prepare(self) -> None:
        self.cells_dir.mkdir(parents=True, exist_ok=True)

    def path(self, cell_id: str) -> Path:
        return self.cells_dir / cell_file_name(cell_id)

    def log_dir(self, cell_id: str) -> Path:
        path = self.root / "logs" / cell_file_name(cell_id).removesuffix(".json")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, result: CellResult) -> Path:
        """Atomically (write + rename), so a crash never leaves half a result."""
        self.prepare()
        path = self.path(result.id)
        tmp = path.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(result.model_dump_json(indent=2) + "\n")
        tmp.replace(path)
        return path

    def read(self, cell_id: str) -> CellResult | None:
        path = self.path(cell_id)
        try:
            return CellResult.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.warning("ignoring unreadable result %s: %s", path, str(exc).splitlines()[0])
            return None

    def results(self) -> list[CellResult]:
        if not self.cells_dir.is_dir():
            return []
        found = (self.read_file(p) for p in sorted(self.cells_dir.glob("*.json")))
        return [r for r in found if r is not None]

    @staticmethod
    def read_file(path: Path) -> CellResult | None:
        try:
            return CellResult.model_validate_json(path.read_text())
        except (OSError, ValidationError):
            return None


def finished_result(store: ResultStore, cell: SweepCell) -> CellResult | None:
    """The stored result that lets ``--resume`` skip ``cell``: same cell, final outcome."""
    found = store.read(cell.id)
    if found is None or found.outcome is Verdict.ERROR:  # ERROR cells are run again
        return None
    if found.cell != cell.model_dump(mode="json"):
        return None
    return found.model_copy(update={"resumed": True})


class ProgressEvent(Frozen):
    """Sent when a cell starts or finishes."""

    kind: str  # "start" | "done"
    cell_id: str
    done: int
    total: int
    running: int
    result: CellResult | None = None
    eta_s: float | None = None


def eta_seconds(durations: Sequence[float], remaining: int, parallel: int) -> float | None:
    """Remaining cells x mean duration / cells in flight; None before any finished."""
    if not durations:
        return None
    if remaining <= 0:
        return 0.0
    return remaining * (sum(durations) / len(durations)) / max(parallel, 1)


def cell_cost(cell: SweepCell, budget: int) -> int:
    return max(1, min(cell.cost, budget))


def can_start(used: int, cost: int, running: int, budget: int, max_parallel: int) -> bool:
    """Whether a cell of ``cost`` may start now: under the parallelism cap, and inside
    the budget unless nothing is running (a cell is never starved by its size)."""
    if running >= max_parallel:
        return False
    return running == 0 or used + cost <= budget


def error_result(cell: SweepCell, kind: str, exc: BaseException, started: float,
                 started_at: dt.datetime) -> CellResult:
    """An exception that escaped a cell: an ERROR cell naming it (the sweep goes on)."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
    return CellResult(
        id=cell.id, kind=kind, outcome=Verdict.ERROR, cell=cell.model_dump(mode="json"),
        reasons=[f"{type(exc).__name__}: {exc}{at}"], started_at=started_at,
        duration_s=time.monotonic() - started,
    )


class Sweep(Generic[C]):
    """Runs ``cells`` with ``execute`` inside a CPU budget (see the module docstring)."""

    def __init__(self, cells: Sequence[C], execute: Callable[[C], CellResult], *,
                 kind: str, store: ResultStore, budget: int | None = None,
                 max_parallel: int | None = None, resume: bool = False,
                 progress: Callable[[ProgressEvent], None] | None = None) -> None:
        ids = [c.id for c in cells]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise UserError(f"duplicate cell ids: {', '.join(dupes)}")
        self.cells = list(cells)
        self.execute = execute
        self.kind = kind
        self.store = store
        self.budget = budget if budget is not None else len(os.sched_getaffinity(0))
        if self.budget < 1:
            raise UserError(f"the CPU budget must be at least 1, got {self.budget}")
        self.max_parallel = max_parallel or self.budget
        self.resume = resume
        self.progress = progress or (lambda _e: None)

    def _run_one(self, cell: C) -> CellResult:
        started, started_at = time.monotonic(), dt.datetime.now(dt.UTC)
        try:
            result = self.execute(cell)
        except Exception as exc:  # any escape is this cell's ERROR, not the sweep's end
            log.exception("cell %s raised", cell.id)
            return error_result(cell, self.kind, exc, started, started_at)
        return result.model_copy(update={
            "cell": cell.model_dump(mode="json"), "kind": self.kind,
            "started_at": result.started_at or started_at,
            "duration_s": result.duration_s or time.monotonic() - started,
        })

    def run(self) -> list[CellResult]:
        """Every cell's result, in cell order."""
        self.store.prepare()
        results: dict[str, CellResult] = {}
        todo: list[C] = []
        for cell in self.cells:
            prior = finished_result(self.store, cell) if self.resume else None
            if prior is not None:
                results[cell.id] = prior
            else:
                todo.append(cell)
        total, durations = len(self.cells), []
        for r in results.values():
            self.progress(ProgressEvent(kind="done", cell_id=r.id, done=len(results),
                                        total=total, running=0, result=r))
        running: dict[Future[CellResult], C] = {}
        used = 0
        with ThreadPoolExecutor(max_workers=self.max_parallel,
                                thread_name_prefix=f"ktstr-{self.kind}") as pool:
            while todo or running:
                while todo and can_start(used, cell_cost(todo[0], self.budget), len(running),
                                         self.budget, self.max_parallel):
                    cell = todo.pop(0)
                    used += cell_cost(cell, self.budget)
                    running[pool.submit(self._run_one, cell)] = cell
                    self.progress(ProgressEvent(kind="start", cell_id=cell.id,
                                                done=len(results), total=total,
                                                running=len(running)))
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    cell = running.pop(fut)
                    used -= cell_cost(cell, self.budget)
                    result = fut.result()
                    self.store.write(result)
                    results[cell.id] = result
                    durations.append(result.duration_s)
                    self.progress(ProgressEvent(
                        kind="done", cell_id=cell.id, done=len(results), total=total,
                        running=len(running), result=result,
                        eta_s=eta_seconds(durations, len(todo) + len(running),
                                          max(len(running), 1))))
        return [results[c.id] for c in self.cells]


def run_cells(cells: Sequence[C], execute: Callable[[C], CellResult], *, kind: str,
              store: ResultStore, budget: int | None = None, max_parallel: int | None = None,
              resume: bool = False,
              progress: Callable[[ProgressEvent], None] | None = None) -> list[CellResult]:
    """Run a sweep; see ``Sweep``."""
    return Sweep(cells, execute, kind=kind, store=store, budget=budget,
                 max_parallel=max_parallel, resume=resume, progress=progress).run()


def write_summary(path: Path, kind: str, results: Sequence[CellResult],
                  extra: dict[str, Any] | None = None) -> None:
    """The ``--json FILE`` document: every cell's result."""
    doc = {"kind": kind, "format": 1, **(extra or {}),
           "cells": [r.model_dump(mode="json") for r in results]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def read_summary(path: Path) -> tuple[str, list[CellResult]]:
    """The kind and the cells of a ``--json`` file; ``UserError`` if it is not one."""
    try:
        doc = json.loads(path.read_text())
        return str(doc["kind"]), [CellResult.model_validate(c) for c in doc["cells"]]
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise UserError(f"{path} is not a ktstr sweep JSON file: "
                        f"{str(exc).splitlines()[0]}") from exc


@contextmanager
def interrupt_note(store: ResultStore) -> Iterator[None]:
    """On Ctrl-C, say where the finished cells are and how to resume."""
    try:
        yield
    except KeyboardInterrupt:
        log.warning("interrupted: finished cells are in %s; continue with --resume %s",
                    store.root, store.root)
        raise
