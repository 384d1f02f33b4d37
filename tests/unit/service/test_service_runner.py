"""The runner interface: argv building, verdict parsing, the subprocess runner with a
stand-in ``ktstr`` script, the scripted fake, and the result spool."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from ktstr.contract import Assignment, Cell, CellKind
from ktstr.errors import UserError
from ktstr.results.model import Verdict
from ktstr.service.schemas import JobResultIn
from ktstr.testing import RunnerScript, Script, ScriptedRunner
from ktstr.worker.runner import KtstrRunner, cell_argv, parse_verdict
from ktstr.worker.spool import Pending, Spool


def cell(**kw: object) -> Cell:
    base: dict[str, object] = {"kind": CellKind.TEST, "kernel": "7.2", "scheduler": "scx_a",
                               "topology": "1,2,2,1", "topology_label": "1n2l2c1t",
                               "repeat": 0, "duration_s": 20.0, "timeout_s": 60.0}
    base.update(kw)
    return Cell.model_validate(base)


def job(c: Cell | None = None) -> Assignment:
    return Assignment(job_id=5, plan_id=1, attempt=1, cell=c or cell(), timeout_s=360)


def test_cell_argv() -> None:
    assert cell_argv(cell(), ["ktstr"], Path("/w/v.json")) == [
        "ktstr", "run", "--kernel", "7.2", "--scheduler", "scx_a", "--topology", "1,2,2,1",
        "--duration", "20s", "--json"]
    assert cell_argv(cell(test="t1"), ["k"], Path("/v.json"))[-2:] == ["--scenario", "t1"]
    assert cell_argv(cell(kind=CellKind.VERIFIER), ["k"], Path("/v.json")) == [
        "k", "verifier", "--kernel", "7.2", "--scheduler", "scx_a", "--topology", "1,2,2,1",
        "--json", "/v.json"]


def test_parse_verdict() -> None:
    assert parse_verdict('{"verdict": "fail", "reasons": ["gap 3s"]}')[:2] == (  # type: ignore[index]
        Verdict.FAIL, ["gap 3s"])
    noisy = 'booting\n{"verdict": "pass", "reasons": []}\n'
    assert parse_verdict(noisy)[0] is Verdict.PASS  # type: ignore[index]
    assert parse_verdict("no json here") is None
    assert parse_verdict('{"verdict": "maybe"}') is None


def fake_ktstr(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "ktstr"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return [str(script)]


def test_ktstr_runner_reads_the_verdict(tmp_path: Path) -> None:
    exe = fake_ktstr(tmp_path, 'echo "$@" >&2\n'
                     'echo \'{"verdict": "fail", "reasons": ["starved"]}\'\nexit 1')
    result = KtstrRunner(exe).run(job(), tmp_path / "w", threading.Event())
    assert (result.outcome, result.failed, result.reasons) == (Verdict.FAIL, False, ["starved"])
    assert result.details["exit_code"] == 1
    assert "run --kernel 7.2 --scheduler scx_a" in result.log


def test_ktstr_runner_reports_a_flaky_fail_as_such(tmp_path: Path) -> None:
    exe = fake_ktstr(tmp_path, 'echo \'{"verdict": "fail", "reasons": ["ejected"], '
                     '"repro": {"status": "flaky"}}\'\nexit 1')
    result = KtstrRunner(exe).run(job(), tmp_path / "w", threading.Event())
    assert result.outcome is Verdict.FAIL
    assert result.reasons == ["flaky: the failure did not recur in its traced rerun",
                              "ejected"]
    exe = fake_ktstr(tmp_path, 'echo \'{"verdict": "fail", "reasons": ["ejected"], '
                     '"repro": {"status": "reproduced"}}\'\nexit 1')
    assert KtstrRunner(exe).run(job(), tmp_path / "w2", threading.Event()).reasons == [
        "ejected"]


def test_ktstr_runner_without_verdict_fails(tmp_path: Path) -> None:
    exe = fake_ktstr(tmp_path, "echo 'kernel 7.2 not found' >&2; exit 2")
    result = KtstrRunner(exe).run(job(), tmp_path / "w", threading.Event())
    assert result.failed and result.outcome is None
    assert "exited 2 without a JSON verdict: kernel 7.2 not found" in result.reasons[0]


def test_ktstr_runner_cancel_ends_the_process(tmp_path: Path) -> None:
    exe = fake_ktstr(tmp_path, "exec sleep 60")
    cancel = threading.Event()
    cancel.set()
    result = KtstrRunner(exe, grace_s=5).run(job(), tmp_path / "w", cancel)
    assert result.failed and result.reasons == ["cancelled: the job was ended"]
    assert result.duration_s < 10


def test_ktstr_runner_verifier_reads_its_file(tmp_path: Path) -> None:
    """What ``ktstr verifier --json FILE`` really writes (the sweep summary: cells, no
    top-level verdict); a fake that wrote a verdict line hid that every verifier job on
    the service came back 'without a JSON verdict'."""
    from ktstr.sweep.runner import CellResult, write_summary

    for outcome, want in ((Verdict.PASS, Verdict.PASS), (Verdict.FAIL, Verdict.FAIL)):
        summary = tmp_path / f"summary-{outcome.value}.json"
        write_summary(summary, "verifier", [CellResult(
            id="verifier/scx_a/7.2.13/tiny-1llc", kind="verifier", outcome=outcome,
            reasons=[] if outcome is Verdict.PASS else ["verifier rejected dispatch"])])
        exe = fake_ktstr(tmp_path, f'for a; do last="$a"; done\ncp {summary} "$last"')
        result = KtstrRunner(exe).run(job(cell(kind=CellKind.VERIFIER)),
                                      tmp_path / f"w-{outcome.value}", threading.Event())
        assert result.outcome is want, result.reasons
        assert result.reasons == ([] if want is Verdict.PASS
                                  else ["verifier rejected dispatch"])


def test_scripted_runner() -> None:
    runner = ScriptedRunner(RunnerScript(schedulers={"scx_a": Script(
        outcome=Verdict.FAIL, reasons=["nope"])}))
    result = runner.run(job(), Path("/nonexistent"), threading.Event())
    assert (result.outcome, result.reasons) == (Verdict.FAIL, ["nope"])
    assert runner.calls == [5]
    slow = ScriptedRunner(RunnerScript(default=Script(seconds=60)))
    cancel = threading.Event()
    cancel.set()
    assert slow.run(job(), Path("/x"), cancel).failed
    assert ScriptedRunner.from_json('{"default": {"seconds": 0.5}}').script.default.seconds \
        == 0.5
    with pytest.raises(UserError, match="KTSTR_WORKER_SCRIPT"):
        ScriptedRunner.from_json("{bad")


def test_spool_roundtrip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "results")
    pending = Pending(job_id=3, result=JobResultIn(worker="w", attempt=2, outcome=Verdict.PASS,
                                                   duration_s=1.0, log="x"))
    spool.save(pending)
    (tmp_path / "results" / "job-9-attempt-1.json").write_text("garbage")
    assert list(spool.pending()) == [pending]  # the unreadable one is dropped
    spool.remove(pending)
    assert list(spool.pending()) == []
