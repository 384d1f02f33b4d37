"""The plugin's options travel typed, never through the environment (issue 17, item 8).

``--ktstr-cold-boot`` and ``--ktstr-cpu-budget`` used to be written into ``os.environ``
so that the VM code of every xdist worker would see them. Now each pytest process (each
xdist worker too) builds ``KtstrOptions`` from its own options, and ``Ctx.request`` puts
the values into the ``RunRequest``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# imported here, before any pytester snapshot of sys.modules (a module first imported
# inside a pytester test is dropped from sys.modules at its end)
import ktstr.run.execute as run_execute
from ktstr.results.model import KernelFacts, RunResult, Verdict
from ktstr.testkit.sidecar import PytestOutcome, Sidecar, read_sidecars, write_sidecar
from ktstr.testkit.summary import summary_lines

pytest_plugins = ["pytester"]

#: a conftest that replaces the VM run in whichever process runs the test (an xdist
#: worker included) and reports what the request and the environment held
FAKE_RUN = '''
import os
import ktstr.run.execute
from ktstr.results.model import RunResult, Verdict


def _fake_run(req, progress=None):
    seen = {"cold_boot": req.cold_boot, "cpu_budget": req.cpu_budget, "keep": req.keep,
            "repro": req.repro, "accel": req.accel.value,
            "env": [os.environ.get("KTSTR_SNAPSHOTS"), os.environ.get("KTSTR_CPU_BUDGET")]}
    import json
    return RunResult(verdict=Verdict.PASS, reasons=[json.dumps(seen)],
                     scheduler=req.scheduler.name, topology_requested=req.topology.label)


ktstr.run.execute.run_scheduler = _fake_run
'''

TESTS = '''
from ktstr import ktstr_test


@ktstr_test(duration_s=1)
def test_a(ctx):
    ctx.run()


@ktstr_test(duration_s=1)
def test_b(ctx):
    ctx.run()
'''


def _seen(results_dir: Path) -> list[dict[str, object]]:
    return [json.loads(s.reasons[0]) for s in read_sidecars(results_dir)]


@pytest.mark.parametrize("xdist", [False, True], ids=["one process", "xdist workers"])
def test_options_reach_every_run_and_leave_the_environment_alone(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        xdist: bool) -> None:
    monkeypatch.delenv("KTSTR_SNAPSHOTS", raising=False)
    monkeypatch.delenv("KTSTR_CPU_BUDGET", raising=False)
    pytester.makeconftest(FAKE_RUN)
    pytester.makepyfile(test_opts=TESTS)
    results = tmp_path / "results"
    args = ["-p", "no:cacheprovider", f"--ktstr-results={results}", "--ktstr-cold-boot",
            "--ktstr-cpu-budget=3", "--ktstr-keep", "--ktstr-no-repro",
            "--ktstr-accel=tcg", *(["-n", "2"] if xdist else [])]
    res = pytester.runpytest_subprocess(*args, timeout=120)
    res.assert_outcomes(passed=2)
    seen = _seen(results)
    assert len(seen) == 2
    for s in seen:
        assert s == {"cold_boot": True, "cpu_budget": 3, "keep": True, "repro": False,
                     "accel": "tcg", "env": [None, None]}


def _ktstr_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("KTSTR_")}


def test_without_the_options_runs_get_the_defaults(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("KTSTR_SNAPSHOTS", raising=False)
    monkeypatch.delenv("KTSTR_CPU_BUDGET", raising=False)
    # the conftest replaces run_scheduler in this process: put the real one back after
    monkeypatch.setattr(run_execute, "run_scheduler", run_execute.run_scheduler)
    pytester.makeconftest(FAKE_RUN)
    pytester.makepyfile(test_opts=TESTS)
    results = tmp_path / "results"
    before = _ktstr_env()
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--ktstr-results={results}",
                                       "--ktstr-cold-boot", "--ktstr-cpu-budget=2")
    res.assert_outcomes(passed=2)
    assert _ktstr_env() == before  # the in-process run set no KTSTR_* variable
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--ktstr-results={results}")
    res.assert_outcomes(passed=2)
    for s in _seen(results):
        assert s["cold_boot"] is False and s["cpu_budget"] is None


def test_a_negative_cpu_budget_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_opts=TESTS)
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--ktstr-cpu-budget=-1")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--ktstr-cpu-budget=-1: give a whole number of CPUs >= 1*"])


def test_sidecars_round_trip_typed(tmp_path: Path) -> None:
    run = RunResult(verdict=Verdict.FAIL, reasons=["died"], scheduler="scx_simple",
                    kernel=KernelFacts(version="7.2.13"), topology_requested="1n1l2c1t",
                    console_tail="long console", sched_log="long log")
    sidecar = Sidecar(test="t.py::test_x[1n1l2c1t]", variant="1n1l2c1t",
                      outcome=PytestOutcome.FAILED, message="FAIL: died",
                      topology_requested="1n1l2c1t", kernel=run.kernel,
                      scheduler="scx_simple", verdict=Verdict.FAIL, reasons=["died"],
                      runs=[run])
    path = write_sidecar(tmp_path, sidecar)
    raw = json.loads(path.read_text())
    assert "console_tail" not in raw["runs"][0] and "sched_log" not in raw["runs"][0]
    (back,) = read_sidecars(tmp_path)
    assert back.verdict is Verdict.FAIL and back.outcome is PytestOutcome.FAILED
    assert back.runs[0].reasons == ["died"] and back.runs[0].console_tail == ""
    assert summary_lines([back]) == summary_lines([raw])
    assert "test_x[1n1l2c1t]  failed   FAIL    scx_simple   7.2.13" in summary_lines([back])[1]


def test_the_plugin_module_leaves_pydantic_and_the_models_to_the_tests() -> None:
    """A pytest-xdist controller imports the plugin before it can start its workers and
    runs no test: importing the plugin must not build ktstr's models."""
    import subprocess
    import sys

    code = ("import sys, ktstr.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m == 'pydantic' "
            "or m.startswith(('ktstr.declare.', 'ktstr.results.', 'ktstr.testkit.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_the_plugin_s_constants_match_the_models() -> None:
    from ktstr import pytest_plugin
    from ktstr.testkit import sidecar, summary
    from ktstr.vm.host import AccelRequest

    assert tuple(a.value for a in AccelRequest) == pytest_plugin.ACCEL_CHOICES
    assert summary.SIDECAR_SUFFIX == sidecar.SUFFIX


def test_the_summary_reads_sidecar_json_and_skips_other_files(tmp_path: Path) -> None:
    from ktstr.testkit.summary import read_sidecar_json

    (tmp_path / "a.ktstr.json").write_text(json.dumps({"test": "t.py::test_a"}))
    (tmp_path / "b.ktstr.json").write_text("{not json")
    (tmp_path / "c.ktstr.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text(json.dumps({"test": "t.py::test_o"}))
    assert [r["test"] for r in read_sidecar_json(tmp_path)] == ["t.py::test_a"]
    assert read_sidecar_json(tmp_path / "missing") == []
