"""The shared sweep runner: budget, ERROR cells, resume, results as they finish."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ktstr.errors import UserError
from ktstr.sweep.runner import (
    CellResult,
    ProgressEvent,
    ResultStore,
    SweepCell,
    Verdict,
    can_start,
    cell_file_name,
    eta_seconds,
    read_summary,
    run_cells,
    write_summary,
)

BOUND_S = 10.0


class Cell(SweepCell):
    name: str
    cpus: int = 1

    @property
    def id(self) -> str:
        return f"test/{self.name}"

    @property
    def cost(self) -> int:
        return self.cpus


def ok(cell: Cell) -> CellResult:
    return CellResult(id=cell.id, kind="test", outcome=Verdict.PASS)


def test_can_start_respects_budget_cap_and_never_starves_a_big_cell() -> None:
    assert can_start(used=0, cost=8, running=0, budget=2, max_parallel=2)
    assert not can_start(used=2, cost=1, running=1, budget=2, max_parallel=4)
    assert can_start(used=1, cost=1, running=1, budget=2, max_parallel=4)
    assert not can_start(used=0, cost=1, running=2, budget=8, max_parallel=2)


def test_cells_run_in_parallel_within_the_budget(tmp_path: Path) -> None:
    barrier = threading.Barrier(2, timeout=BOUND_S)
    lock = threading.Lock()
    active, peak = [0], [0]

    def pair(cell: Cell) -> CellResult:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        barrier.wait()  # passes only when two cells run at once
        with lock:
            active[0] -= 1
        return ok(cell)

    cells = [Cell(name=f"c{i}", cpus=2) for i in range(4)]
    results = run_cells(cells, pair, kind="test", store=ResultStore(tmp_path), budget=4)
    assert [r.outcome for r in results] == [Verdict.PASS] * 4
    assert peak[0] == 2


def test_a_raising_cell_is_an_error_cell_and_the_sweep_goes_on(tmp_path: Path) -> None:
    def flaky(cell: Cell) -> CellResult:
        if cell.name == "bad":
            raise RuntimeError("QEMU went away")
        return ok(cell)

    cells = [Cell(name="a"), Cell(name="bad"), Cell(name="b")]
    events: list[ProgressEvent] = []
    results = run_cells(cells, flaky, kind="test", store=ResultStore(tmp_path), budget=1,
                        progress=events.append)
    assert [r.outcome for r in results] == [Verdict.PASS, Verdict.ERROR, Verdict.PASS]
    assert results[1].reasons[0].startswith("RuntimeError: QEMU went away at ")
    assert results[1].cell == {"name": "bad", "cpus": 1}
    done = [e for e in events if e.kind == "done"]
    assert [e.done for e in done] == [1, 2, 3] and done[-1].eta_s == 0.0


def test_results_are_written_as_each_cell_completes(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    seen_on_disk: list[list[str]] = []

    def record(cell: Cell) -> CellResult:
        seen_on_disk.append(sorted(p.name for p in store.cells_dir.glob("*.json")))
        return ok(cell)

    run_cells([Cell(name="a"), Cell(name="b")], record, kind="test", store=store, budget=1)
    assert seen_on_disk == [[], ["test__a.json"]]
    assert store.read("test/a") is not None and store.read("test/b") is not None


def test_resume_skips_finished_cells_and_reruns_errors(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(CellResult(id="test/a", kind="test", outcome=Verdict.FAIL,
                           cell={"name": "a", "cpus": 1}))
    store.write(CellResult(id="test/b", kind="test", outcome=Verdict.ERROR,
                           cell={"name": "b", "cpus": 1}))
    store.write(CellResult(id="test/c", kind="test", outcome=Verdict.PASS,
                           cell={"name": "c", "cpus": 9}))  # a different cell now
    ran: list[str] = []

    def count(cell: Cell) -> CellResult:
        ran.append(cell.name)
        return ok(cell)

    cells = [Cell(name="a"), Cell(name="b"), Cell(name="c")]
    results = run_cells(cells, count, kind="test", store=store, budget=1, resume=True)
    assert ran == ["b", "c"]
    assert results[0].outcome is Verdict.FAIL and results[0].resumed
    assert [r.outcome for r in results[1:]] == [Verdict.PASS, Verdict.PASS]
    assert len(store.results()) == 3


def test_duplicate_ids_and_bad_budget_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="duplicate cell ids: test/a"):
        run_cells([Cell(name="a"), Cell(name="a")], ok, kind="test",
                  store=ResultStore(tmp_path))
    with pytest.raises(UserError, match="at least 1"):
        run_cells([Cell(name="a")], ok, kind="test", store=ResultStore(tmp_path), budget=0)


def test_eta_and_file_names() -> None:
    assert eta_seconds([], 3, 1) is None
    assert eta_seconds([10.0, 20.0], 4, 2) == 30.0
    assert cell_file_name("verifier/scx_simple/7.2.13/tiny-1llc") == \
        "verifier__scx_simple__7.2.13__tiny-1llc.json"


def test_summary_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_summary(path, "test", [ok(Cell(name="a"))], {"sweep_dir": "/x"})
    kind, cells = read_summary(path)
    assert kind == "test" and cells[0].id == "test/a"
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a ktstr sweep JSON"):
        read_summary(tmp_path / "bad.json")
    with pytest.raises(UserError, match="no such file"):
        read_summary(tmp_path / "missing.json")
