"""Verifier sweep output (table, grid, failures) and ``diff``, from built results."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ktstr.cli.root import cli
from ktstr.results.model import Verdict
from ktstr.sweep.guestout import ProgVerdict
from ktstr.sweep.report import column_groups, common_prefix, diff_sweeps, render, render_diff
from ktstr.sweep.runner import CellResult, write_summary
from ktstr.sweep.verifier import ProgramStats, VerifierDetail


def cell(kernel: str, preset: str, progs: dict[str, int | None],
         outcome: Verdict = Verdict.PASS, loaded: int | None = None) -> CellResult:
    programs = [ProgramStats(name=n, verdict=ProgVerdict.FAILURE if v is None
                             else ProgVerdict.SUCCESS, insns=v or 0, loaded_insns=loaded)
                for n, v in progs.items()]
    d = VerifierDetail(scheduler="scx_simple", kernel=kernel, preset=preset, topology="x",
                       build_series=kernel[:3], programs=programs,
                       failed_programs=[p.name for p in programs
                                        if p.verdict is ProgVerdict.FAILURE],
                       reproducer=f"ktstr verifier --kernel {kernel}")
    return CellResult(id=f"verifier/scx_simple/{kernel}/{preset}", kind="verifier",
                      outcome=outcome, detail=d.model_dump(mode="json"),
                      reasons=["boom"] if outcome is not Verdict.PASS else [],
                      cell={"scheduler": "scx_simple", "kernel": {"version": kernel},
                            "preset": preset})


RESULTS = [
    cell("7.2.13", "tiny-1llc", {"simple_enqueue": 42, "simple_init": 19}),
    cell("7.2.13", "smt-2llc", {"simple_enqueue": 44, "simple_init": 19}),
    cell("7.3.4", "tiny-1llc", {"simple_enqueue": 800_000, "simple_init": None},
         Verdict.FAIL),
]


def test_table_grid_and_failures() -> None:
    out = render(RESULTS)
    lines = out.splitlines()
    assert "(columns without the 'simple_' prefix)" in lines[0]
    assert lines[1].split() == ["kernel", "enqueue", "init"]
    assert lines[3].split() == ["7.2.13", "42..44", "19"]
    assert lines[4].split() == ["7.3.4", "800000!", "FAIL"]
    grid = out[out.index("pass grid"):].splitlines()
    assert grid[1].split() == ["kernel", "smt-2llc", "tiny-1llc"]
    assert grid[3].split() == ["7.2.13", "PASS", "PASS"]
    assert grid[4].split() == ["7.3.4", "-", "FAIL"]
    assert "verifier/scx_simple/7.3.4/tiny-1llc: simple_enqueue 800000 insns" in out
    assert "FAIL  verifier/scx_simple/7.3.4/tiny-1llc" in out
    assert "reproduce: ktstr verifier --kernel 7.3.4" in out
    assert out.endswith("3 cells: 2 PASS, 1 FAIL")


def test_loaded_insns_win_over_veristat() -> None:
    out = render([cell("7.2.13", "a", {"p_x": 10, "p_y": 5}, loaded=12)])
    assert out.splitlines()[3].split() == ["7.2.13", "12", "12"]


def test_helpers() -> None:
    assert common_prefix(["qmap_a", "qmap_b"]) == "qmap_"
    assert common_prefix(["a_x", "b_x"]) == "" and common_prefix(["one"]) == ""
    assert column_groups([10, 10, 10], first=6, limit=30) == [[0, 1], [2]]
    assert column_groups([50], first=6, limit=30) == [[0]]


def test_diff_pairs_across_kernels_and_flags_regressions() -> None:
    old = [cell("7.2.13", "tiny-1llc", {"simple_enqueue": 100, "simple_init": 19,
                                        "simple_gone": 5})]
    new = [cell("7.3.4", "tiny-1llc", {"simple_enqueue": 115, "simple_init": None,
                                       "simple_new": 7})]
    deltas = {d.key: d for d in diff_sweeps(old, new, threshold_pct=10)}
    enq = deltas["scx_simple/tiny-1llc/simple_enqueue"]
    assert (enq.old, enq.new, enq.delta, enq.pct, enq.regression) == (100, 115, 15, 15.0, True)
    assert deltas["scx_simple/tiny-1llc/simple_init"].note == "now fails"
    assert deltas["scx_simple/tiny-1llc/simple_gone"].note == "gone"
    assert not deltas["scx_simple/tiny-1llc/simple_new"].regression
    relaxed = {d.key: d for d in diff_sweeps(old, new, threshold_pct=20)}
    assert not relaxed["scx_simple/tiny-1llc/simple_enqueue"].regression
    same_kernel = diff_sweeps(old, old)
    assert all(d.key.startswith("scx_simple/7.2.13/") and d.delta == 0 for d in same_kernel)
    assert "3 programs compared, 0 regression(s)" in render_diff(same_kernel)


def test_cli_diff_exit_codes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_summary(a, "verifier", [cell("7.2.13", "t", {"p": 100})])
    write_summary(b, "verifier", [cell("7.3.4", "t", {"p": 150})])
    runner = CliRunner()
    res = runner.invoke(cli, ["verifier", "diff", str(a), str(b)])
    assert res.exit_code == 1, res.output
    assert "REGRESSION grew more than 10%" in res.output
    res = runner.invoke(cli, ["verifier", "diff", str(a), str(b), "--threshold", "60"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["verifier", "diff", str(a), str(b), "--exit-zero"])
    assert res.exit_code == 0
    assert json.loads(a.read_text())["kind"] == "verifier"
