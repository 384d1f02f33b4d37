"""The repro path without a VM: the ftrace parser and converters on a real trace (a
7.2.13 guest, scx_qmap -t 10, recorded by ktstr's agent and trimmed), and the one repro
decision with a scripted ``run_once``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import Topology
from ktstr.results.model import (
    FailureClass,
    ReproStatus,
    RunResult,
    SchedOutcome,
    Verdict,
    VmOutcome,
)
from ktstr.results.trace import (
    CPU_PROCESS,
    TASK_PROCESS,
    WAITING_PROCESS,
    FailureSource,
    chrome_trace,
    exit_site,
    failure_instant,
    failure_window,
    last_seen_on,
    parse_line,
    parse_trace,
    run_segments,
    runnable_since,
    running_at,
    stalled_task,
    tasks_named,
    waiting_at,
)
from ktstr.run.repro import failure_class, repro_request, wants_repro, with_repro, write_trace
from ktstr.run.request import RunRequest
from ktstr.testkit.summary import summary_lines

DATA = Path(__file__).parent / "data" / "trace_qmap_stall_7.2.txt"
REASON = ('ejected: kernel disabled BPF scheduler "qmap" (runnable task stall); scheduler '
          "said EXIT: runnable task stall (scx_qmap[137] failed to run for 6.468s) on CPU 1")
QMAP = Scheduler(name="scx_qmap", verbose_args=("-v",))


@pytest.fixture(scope="module")
def text() -> str:
    return DATA.read_text()


def test_lines_with_odd_comms_tgid_and_no_flags_parse() -> None:
    e = parse_line("  kworker/u18:1-43      [002] d.h1.    15.853392: sched_ext_dump: qmap: root")
    assert e is not None and (e.comm, e.pid, e.cpu, e.t) == ("kworker/u18:1", 43, 2, 15.853392)
    assert e.text == "qmap: root"
    e = parse_line("  my-task name-1234 (   1200) [000] ....  1.500000: sched_wakeup: "
                   "comm=x y pid=7 prio=120 target_cpu=003")
    assert e is not None and (e.comm, e.pid, e.cpu) == ("my-task name", 1234, 0)
    assert e.fields == {"comm": "x y", "pid": "7", "prio": "120", "target_cpu": "003"}
    e = parse_line("  a-1 [001] 2.000001: sched_switch: prev_comm=a b prev_pid=1 prev_prio=120 "
                   "prev_state=R+ ==> next_comm=c-d next_pid=2 next_prio=100")
    assert e is not None and e.fields["prev_comm"] == "a b" and e.fields["next_pid"] == "2"
    assert e.fields["prev_state"] == "R+"
    assert parse_line("# tracer: nop") is None
    t = parse_trace("CPU:3 [LOST 17 EVENTS]\nnot a trace line\n")
    assert t.lost == {3: 17} and t.unparsed == 1 and not t.events


def test_real_stall_trace_shows_the_stalled_task_runnable_past_the_watchdog(text: str) -> None:
    trace = parse_trace(text)
    assert trace.unparsed == 0 and len(trace.events) > 400
    fail = failure_instant(trace)
    assert fail is not None and fail.source is FailureSource.DUMP
    assert fail.t == 15.853392
    # the dump ran on CPU 2; the kernel names CPU 1 (where the watchdog fired)
    assert (fail.cpu, fail.recorded_cpu) == (1, 2)
    assert fail.site is not None and fail.site.kind == 1026
    stalled = stalled_task(REASON)
    assert stalled is not None and (stalled.comm, stalled.pid, stalled.waited_s) == (
        "scx_qmap", 137, 6.468)
    since = runnable_since(trace, 137, fail.t)
    assert since == 9.392781  # its wake-up; no switch to it until the ejection
    assert fail.t - since > 5.0  # scx_qmap's watchdog bound (timeout_ms 5000)
    assert abs((fail.t - since) - stalled.waited_s) < 0.05
    # after the ejection it ran (under EEVDF): at that instant it was not waiting any more
    assert runnable_since(trace, 137, 15.9) is None


def test_segments_tile_each_cpu_and_the_window_ends_at_the_failure(text: str) -> None:
    trace = parse_trace(text)
    segs = run_segments(trace)
    for cpu in trace.cpus:
        mine = [s for s in segs if s.cpu == cpu]
        assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(mine))
    win = failure_window(trace, seconds=3.0, stalled=stalled_task(REASON))
    assert win is not None and win.end == 15.853392 and win.start == pytest.approx(12.853392)
    assert win.segments and all(win.start <= s.start <= s.end <= win.end for s in win.segments)
    assert win.stalled_pid == 137 and win.stalled_since == 9.392781
    seg = running_at(trace, 2, 15.853392)
    assert seg is not None and seg.comm == "kworker/u18:1"  # the one writing the dump


def test_chrome_trace_has_cpu_tracks_named_tasks_the_failure_and_the_stall(text: str) -> None:
    trace = parse_trace(text)
    doc = json.loads(json.dumps(chrome_trace(trace, stalled=stalled_task(REASON),
                                             reason="runnable task stall")))
    evs = doc["traceEvents"]
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"
             and e["pid"] == CPU_PROCESS}
    assert names == {f"CPU {c}" for c in trace.cpus}
    assert 137 in tasks_named(evs)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in evs if e["ph"] == "X")
    fail = [e for e in evs if e.get("cat") == "failure"]
    assert len(fail) == 1 and fail[0]["s"] == "g"
    assert fail[0]["ts"] == pytest.approx((15.853392 - trace.events[0].t) * 1e6, abs=1)
    stall = [e for e in evs if e.get("pid") == TASK_PROCESS and e["ph"] == "X"]
    assert len(stall) == 1 and stall[0]["dur"] == pytest.approx(6.460611e6, abs=1)
    dump = [e for e in evs if e.get("cat") == "sched_ext_dump"]
    assert len(dump) == 1 and "runnable task stall" in dump[0]["args"]["text"]
    assert all(e["pid"] in (CPU_PROCESS, TASK_PROCESS, WAITING_PROCESS) for e in evs)


SMALL = (Path(__file__).parent / "data" / "trace_small.txt").read_text()


def test_waiting_at_the_failure_follows_wakeups_preemptions_switches_and_exits() -> None:
    trace = parse_trace(SMALL)
    # w ran at 1.5, was preempted at 2.0; x woke at 2.1 and never ran; y exited; b blocked
    assert waiting_at(trace, 3.0) == {10: (2.0, "w"), 12: (2.1, "x")}
    assert waiting_at(trace, 1.2) == {10: (1.0, "w")}
    assert runnable_since(trace, 10, 1.7) is None  # running then
    doc = chrome_trace(trace)
    waits = {e["tid"]: e["dur"] for e in doc["traceEvents"]
             if e.get("pid") == WAITING_PROCESS and e["ph"] == "X"}
    assert waits == {10: pytest.approx(1e6), 12: pytest.approx(0.9e6)}
    win = failure_window(trace)
    assert win is not None and [(w.pid, w.since) for w in win.waiting] == [(10, 2.0), (12, 2.1)]


def test_a_7_3_error_names_the_task_being_enqueued_on_the_cpu_not_the_one_running() -> None:
    """Recorded on 7.3.4 (scx_qmap -e 100): the kernel's sched_ext_exit fired on CPU 2
    while ktstr-agent[137] ran there; the dump names kdamond.0[74], which had just been
    woken and migrated to CPU 2 (its enqueue hit the error)."""
    trace = parse_trace((DATA.parent / "trace_qmap_error_7.3_excerpt.txt").read_text())
    fail = failure_instant(trace)
    assert fail is not None and fail.source is FailureSource.EXIT_EVENT
    assert (fail.t, fail.cpu) == (9.31726, 2)
    assert fail.site is not None and (fail.site.comm, fail.site.pid) == ("kdamond.0", 74)
    seg = running_at(trace, 2, fail.t)
    assert seg is not None and seg.pid == 137
    seen = last_seen_on(trace, 74, 2, fail.t)
    assert seen is not None and seen.name == "sched_migrate_task" and seen.t == 9.316873
    assert last_seen_on(trace, 74, 3, fail.t) is None


def test_exit_site_of_an_error_dump() -> None:
    site = exit_site("qmap: root\nkdamond.0[71] triggered exit kind 1025 on CPU 2:\n")
    assert site is not None and (site.comm, site.pid, site.kind, site.cpu) == (
        "kdamond.0", 71, 1025, 2)
    assert exit_site("nothing here") is None


def test_write_trace_files_and_summary(tmp_path: Path, text: str) -> None:
    from ktstr.guest.protocol import Event, EventName

    events = [Event(t="event", name=EventName.TRACE_STARTED, fields={
        "enabled": "sched/sched_switch sched_ext/sched_ext_dump", "missing": "sched_ext/x",
        "clock": "boot", "buffer_kb": "4096"}),
        Event(t="event", name=EventName.TRACE_READ, fields={"bytes": "900", "sent": "800"})]
    s = write_trace(tmp_path, text, events, sched_log=REASON, kernel_log="", reason="x",
                    title="t")
    assert Path(s.text_path).read_text() == text
    assert json.loads(Path(s.json_path).read_text())["traceEvents"]
    assert s.enabled == ["sched/sched_switch", "sched_ext/sched_ext_dump"]
    assert s.missing == ["sched_ext/x"] and s.truncated and s.buffer_kb == 4096
    assert s.stalled is not None and s.stalled_since == 9.392781
    assert s.failure_t == 15.853392 and s.exit_site is not None and s.exit_site.cpu == 1


# -- the decision -----------------------------------------------------------------------

def _req(tmp_path: Path, **kw: object) -> RunRequest:
    return RunRequest(scheduler=QMAP, kernel="7.2", topology=Topology(1, 2, 2, 1),
                      run_dir=tmp_path, **kw)  # type: ignore[arg-type]


def _result(verdict: Verdict, outcome: SchedOutcome = SchedOutcome.EJECTED,
            reason: str | None = "runnable task stall", run_dir: str = "/x") -> RunResult:
    return RunResult(verdict=verdict, scheduler="scx_qmap", sched_outcome=outcome,
                     ejection_reason=reason, run_dir=run_dir, reasons=["r"])


def test_failure_classes() -> None:
    assert failure_class(_result(Verdict.PASS, SchedOutcome.ATTACHED)) is None
    assert failure_class(_result(Verdict.FAIL)) is FailureClass.STALLED
    assert failure_class(_result(Verdict.FAIL, reason="scx_bpf_error")) is FailureClass.EJECTED
    assert failure_class(_result(Verdict.FAIL, SchedOutcome.DIED)) is FailureClass.DIED
    assert failure_class(_result(Verdict.FAIL, SchedOutcome.ATTACHED)) is \
        FailureClass.CHECK_FAILED
    crashed = _result(Verdict.FAIL).model_copy(update={"vm_outcome": VmOutcome.CRASHED})
    assert failure_class(crashed) is FailureClass.CRASHED


def test_only_a_fail_of_an_untraced_run_is_repro_d(tmp_path: Path) -> None:
    req = _req(tmp_path)
    assert wants_repro(req, _result(Verdict.FAIL))
    assert not wants_repro(req, _result(Verdict.PASS))
    assert not wants_repro(req, _result(Verdict.ERROR))
    assert not wants_repro(req.model_copy(update={"repro": False}), _result(Verdict.FAIL))
    traced = repro_request(req, tmp_path / "repro")
    assert not wants_repro(traced, _result(Verdict.FAIL))


@pytest.mark.parametrize(("rerun", "status"), [
    (_result(Verdict.FAIL), ReproStatus.REPRODUCED),
    (_result(Verdict.FAIL, reason="scx_bpf_error"), ReproStatus.FLAKY),
    (_result(Verdict.PASS, SchedOutcome.ATTACHED), ReproStatus.FLAKY),
    (_result(Verdict.ERROR, SchedOutcome.UNKNOWN), ReproStatus.NO_VERDICT),
])
def test_with_repro_reruns_once_traced_and_says_what_it_found(
        tmp_path: Path, rerun: RunResult, status: ReproStatus) -> None:
    req = _req(tmp_path, extra_sched_args=("-t", "10"), one_shot_sched_args=("-e", "1"))
    calls: list[RunRequest] = []

    def once(r: RunRequest, _progress: object) -> RunResult:
        calls.append(r)
        return rerun

    out = with_repro(req, _result(Verdict.FAIL, run_dir=str(tmp_path)), once, lambda _: None)
    assert len(calls) == 1
    again = calls[0]
    assert again.trace is not None and "sched/sched_switch" in again.trace.events
    assert again.run_dir == tmp_path / "repro" and again.keep and not again.repro
    assert again.sched_args == ["-t", "10", "-v"]  # verbose, without the one-shot fault
    assert req.sched_args == ["-t", "10", "-e", "1"]
    assert again.duration_s == req.duration_s and again.topology == req.topology
    assert out.repro is not None and out.repro.status is status
    assert out.verdict is Verdict.FAIL  # the first run's verdict stands
    assert out.flaky is (status is ReproStatus.FLAKY)
    assert ("(flaky)" in out.summary_line()) is out.flaky


def test_no_rerun_on_pass_or_when_turned_off(tmp_path: Path) -> None:
    def never(r: RunRequest, _progress: object) -> RunResult:
        raise AssertionError("no rerun expected")

    passed = _result(Verdict.PASS, SchedOutcome.ATTACHED)
    assert with_repro(_req(tmp_path), passed, never, lambda _: None).repro is None
    off = _req(tmp_path, repro=False)
    assert with_repro(off, _result(Verdict.FAIL), never, lambda _: None).repro is None


def test_reproducer_names_the_one_shot_fault(tmp_path: Path) -> None:
    cmd = _req(tmp_path, one_shot_sched_args=("-e", "100")).reproducer("7.2")
    assert "--one-shot-sched-arg=-e --one-shot-sched-arg=100" in cmd


def test_summary_marks_a_flaky_fail() -> None:
    rows = [{"test": "t.py::test_a[x]", "outcome": "failed", "verdict": "fail", "flaky": True,
             "reasons": ["ejected"], "scheduler": "scx_qmap", "kernel": {"version": "7.2"},
             "topology_requested": "1n"}]
    line = summary_lines(rows)[1]
    assert "FAIL~" in line and "flaky" in line


def test_report_draws_the_failure_timeline_with_the_stalled_task(tmp_path: Path,
                                                                 text: str) -> None:
    from ktstr.guest.protocol import Event, EventName
    from ktstr.results.html import LabelledRun, Report, render
    from ktstr.results.model import Repro

    summary = write_trace(tmp_path, text, [Event(t="event", name=EventName.TRACE_STARTED)],
                          sched_log=REASON, kernel_log="", reason="stall", title="t")
    repro = Repro(status=ReproStatus.REPRODUCED, first_class=FailureClass.STALLED,
                  repro_verdict=Verdict.FAIL, repro_class=FailureClass.STALLED,
                  reasons=[REASON], trace=summary)
    run = _result(Verdict.FAIL).model_copy(update={"repro": repro})
    page = render(Report(runs=[LabelledRun(label="stall.json", result=run)]))
    assert 'id="traces"' in page and "reproduced" in page
    svg = page[page.index('id="traces"'):]
    assert all(f"CPU {c}" in svg for c in range(4))
    assert "scx_qmap[137]" in svg and "runnable, not running since -6.461 s" in svg
    assert summary.json_path in svg
    # a sidecar's runs carry the same repro: the gauntlet's report shows it too
    sidecar = {"test": "t.py::test_x[v]", "runs": [json.loads(run.model_dump_json())],
               "verdict": "fail", "flaky": True}
    gauntlet = render(Report(sidecars=[sidecar]))
    assert 'id="traces"' in gauntlet and "fail (flaky)" in gauntlet
    assert 'id="traces"' not in render(Report(runs=[LabelledRun(
        label="pass", result=_result(Verdict.PASS, SchedOutcome.ATTACHED))]))


@pytest.mark.parametrize(("session_repro", "expect_err", "want"), [
    (True, False, True), (False, False, False), (True, True, False)])
def test_pytest_runs_repro_unless_turned_off_or_a_failure_is_expected(
        tmp_path: Path, session_repro: bool, expect_err: bool, want: bool) -> None:
    from ktstr.declare.topology import HostCapacity
    from ktstr.testkit import ktstr_test
    from ktstr.testkit.context import Ctx
    from ktstr.testkit.session import KtstrSession
    from ktstr.testkit.spec import spec_of
    from ktstr.testkit.variants import KernelChoice, expand_variants

    def body(ctx: object) -> None:
        return None

    spec = spec_of(ktstr_test(scheduler=QMAP, expect_err=expect_err)(body))
    assert spec is not None
    (variant,) = expand_variants(spec, [KernelChoice(spec="7.2", label="7.2.13")])
    session = KtstrSession(results_dir=tmp_path, host=HostCapacity.detect(),
                           repro=session_repro)
    assert Ctx(spec, variant, session).request().repro is want


def test_gauntlet_passes_no_repro_to_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ktstr.cli.root import cli

    seen: list[list[str]] = []

    def main(args: list[str], plugins: object = None) -> int:
        seen.append(list(args))
        return 5

    monkeypatch.setattr("pytest.main", main)
    monkeypatch.setattr("ktstr.cli.testcmd._resolve", lambda kernels: None)
    CliRunner().invoke(cli, ["gauntlet", "--no-repro", "tests/examples"])
    assert seen and "--ktstr-no-repro" in seen[0]


@pytest.mark.parametrize(("args", "repro", "one_shot"), [
    ([], True, ()), (["--no-repro"], False, ()),
    (["--one-shot-sched-arg=-e", "--one-shot-sched-arg=100"], True, ("-e", "100"))])
def test_ktstr_run_options_reach_the_request(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                             repro: bool, one_shot: tuple[str, ...]) -> None:
    from click.testing import CliRunner

    from ktstr.cli.root import cli

    seen: list[RunRequest] = []

    def fake(request: RunRequest, progress: object = None) -> RunResult:
        seen.append(request)
        return _result(Verdict.PASS, SchedOutcome.ATTACHED)

    monkeypatch.setattr("ktstr.run.execute.run_scheduler", fake)
    done = CliRunner().invoke(cli, ["run", "-s", "scx_qmap", "--kernel", "7.2", *args])
    assert done.exit_code == 0, done.output
    assert seen[0].repro is repro and seen[0].one_shot_sched_args == one_shot
