"""``ktstr compare`` and ``ktstr report`` without VMs: metric extraction, the cyclictest
parser, result loading, the A/B dimension, interleaving, gates, markdown, HTML, the CLI,
and the pytest summary's test ids."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ktstr import EEVDF, Sysctl, Topology
from ktstr.cli import main
from ktstr.compare.analyse import compare_results, left_out_reason
from ktstr.compare.execute import (
    check_one_dimension,
    differences,
    interleaved,
    parallel_slots,
    run_pair,
)
from ktstr.compare.model import Comparison, MetricOutcome
from ktstr.compare.render import GateRule, gate, markdown, terminal
from ktstr.compare.sources import load_runs, runs_from_json
from ktstr.declare.payload import MetricHint, Polarity
from ktstr.errors import DuplicateNameError, InfraError, UnknownNameError, UserError
from ktstr.payloads.builtin import CYCLICTEST, HACKBENCH, STRESS_NG
from ktstr.results.html import Report, load_report, render
from ktstr.results.metricdefs import (
    MetricDef,
    MetricKind,
    default_metrics,
    extract,
    payload_hints,
)
from ktstr.results.metrics import parse_cyclictest
from ktstr.results.model import RunResult, SchedOutcome, Timings, Verdict, VmOutcome
from ktstr.run.request import RunRequest
from ktstr.testkit.summary import shorten_test_id, summary_lines

DATA = Path(__file__).parent / "data"
HINTS = payload_hints([STRESS_NG, HACKBENCH, CYCLICTEST])


def worker(cg: str, index: int, *, run: float, wait: float, units: int, wall: float = 3000,
           slices: int = 100, vol: int = 0, migr: int | None = 4, gap: float = 10.0
           ) -> dict[str, Any]:
    return {"cgroup": cg, "index": index, "pid": 100 + index, "started": True,
            "wall_ms": wall, "run_ms": run, "wait_ms": wait, "timeslices": slices,
            "voluntary_switches": vol, "migrations": migr, "work_units": units,
            "max_gap_ms": gap, "wake_p99_us": None}


def scenario_run(scale: float = 1.0, *, verdict: Verdict = Verdict.PASS,
                 boot: float = 5.0, **kw: Any) -> RunResult:
    workers = [worker("cg_0", 0, run=1500 * scale, wait=1400, units=int(1000 * scale)),
               worker("cg_0", 1, run=1400 * scale, wait=1500, units=int(900 * scale)),
               worker("cg_1", 0, run=1000 * scale, wait=1900, units=int(700 * scale),
                      vol=30, gap=25.0)]
    base: dict[str, Any] = {"verdict": verdict, "scheduler": "scx_simple",
                            "sched_outcome": SchedOutcome.ATTACHED,
                            "topology_requested": "1n1l2c1t",
                            "stats": {"scenario": {"workers": workers}},
                            "timings": Timings(boot_s=boot, attach_s=2.0)}
    return RunResult(**{**base, **kw})


# ---- the registry and extraction ------------------------------------------------------

def test_registry_rejects_duplicates_and_names_the_known_metrics() -> None:
    reg = default_metrics()
    with pytest.raises(DuplicateNameError):
        reg.register(MetricDef(key="work.units", template="work.units"))
    with pytest.raises(UnknownNameError, match=r"work\.units"):
        reg.get("no.such")
    assert len(default_metrics()) == len(reg)  # every call builds a fresh one


def test_scenario_metrics_from_worker_reports() -> None:
    got = {s.metric.name: s for s in extract(scenario_run(), hints=HINTS)}
    v = {k: s.value for k, s in got.items()}
    assert v["work.units"] == 2600
    assert v["work.cpu_s"] == pytest.approx(3.9)
    assert v["cgroup.cg_0.cpu_pct"] == pytest.approx((50 + 1400 / 30) / 2)
    assert v["cgroup.cg_0.share_pct"] == pytest.approx(100 * 2900 / 3900)
    assert v["cgroup.cg_1.wait_pct"] == pytest.approx(100 * 1900 / 3000)
    assert v["cgroup.cg_1.run_delay_us"] == pytest.approx(1900 * 1000 / 100)
    assert v["cgroup.cg_1.wakeups_per_s"] == pytest.approx(10.0)
    assert v["cgroup.cg_0.migrations_per_s"] == pytest.approx(8 / 6)
    assert v["spread.max_pct"] == pytest.approx(50 - 1400 / 30)
    assert v["gap.max_ms"] == 25.0
    assert v["worker.cg_0.1.cpu_pct"] == pytest.approx(1400 / 30)
    assert "worker.cg_1.0.cpu_pct" not in v  # a lone worker is its cgroup
    assert got["work.units"].metric.polarity is Polarity.HIGHER_BETTER
    assert got["cgroup.cg_1.wait_pct"].metric.polarity is Polarity.LOWER_BETTER
    assert got["harness.boot_s"].metric.kind is MetricKind.HARNESS
    assert v["harness.attach_s"] == 2.0


def test_payload_metrics_follow_the_declared_hints() -> None:
    stress = RunResult(verdict=Verdict.PASS, scheduler="eevdf", stats={"payload": {
        "name": "stress-ng", "metrics": {"cpu.bogo_ops_per_second_real_time": 900.0,
                                         "bogo_ops_per_second_real_time": 900.0,
                                         "cpu.bogo_ops": 4000.0}}})
    (s,) = extract(stress, hints=HINTS)
    assert s.metric.name == "payload.stress-ng.cpu.bogo_ops_per_second_real_time"
    assert s.metric.unit == "ops/s" and s.metric.polarity is Polarity.HIGHER_BETTER
    hb = RunResult(verdict=Verdict.PASS, scheduler="eevdf",
                   stats={"payload": {"name": "hackbench", "metrics": {"time_s": 1.5}}})
    (h,) = extract(hb, hints=HINTS)
    assert h.metric.name == "payload.hackbench.time_s"
    assert h.metric.polarity is Polarity.LOWER_BETTER
    unhinted = RunResult(verdict=Verdict.PASS, scheduler="eevdf", stats={"payload": {
        "name": "mine", "metrics": {"a.b": 1.0, "flag": True}}})
    (u,) = extract(unhinted, hints=HINTS)
    assert u.metric.name == "payload.mine.a.b" and u.metric.polarity is Polarity.NEUTRAL


def test_cyclictest_parser_against_a_recorded_run() -> None:
    text = (DATA / "cyclictest-h300-t2.txt").read_text()
    m = parse_cyclictest(text)
    assert m["latency_min_us"] == 20 and m["latency_max_us"] == 7973
    assert m["samples"] == 874 + 67 + 900 + 56 and m["overflows"] == 67 + 56
    assert m["latency_avg_us"] == pytest.approx((184 * 941 + 166 * 956) / 1897)
    # the same percentiles the slow way: every sample, overflows past the histogram
    values: list[float] = []
    for line in text.splitlines():
        if line[:1].isdigit():
            us, *counts = (int(x) for x in line.split())
            values += [us] * sum(counts)
    values += [math.inf] * 123
    for suffix, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        want = float(np.quantile(values, q, method="inverted_cdf"))
        assert m[f"latency_{suffix}_us"] == (want if math.isfinite(want) else 7973), suffix
    assert parse_cyclictest("garbage") == {}


def test_cyclictest_payload_declaration() -> None:
    assert CYCLICTEST.output.value == "cyclictest"
    assert {h.name for h in CYCLICTEST.metrics} >= {"latency_p99_us", "latency_max_us"}
    assert all(h.polarity is Polarity.LOWER_BETTER for h in CYCLICTEST.metrics)


# ---- loading, left-out runs ---------------------------------------------------------

def test_loading_run_json_sidecars_and_lists(tmp_path: Path) -> None:
    r = scenario_run()
    (tmp_path / "one.json").write_text(r.model_dump_json())
    (tmp_path / "list.json").write_text(json.dumps([r.model_dump(mode="json")] * 2))
    sidecar = {"test": "tests/x.py::test_y[1n1l2c1t]", "runs": [r.model_dump(mode="json")]}
    (tmp_path / "t.ktstr.json").write_text(json.dumps(sidecar))
    (tmp_path / "comparison.json").write_text(json.dumps({"kind": "comparison"}))
    runs = load_runs(tmp_path)
    assert len(runs) == 4
    assert {x.group for x in runs} == {"", "test_y[1n1l2c1t]"}
    with pytest.raises(UserError, match="not a ktstr result"):
        runs_from_json({"hello": 1}, "x.json")
    with pytest.raises(UserError, match="no such file"):
        load_runs(tmp_path / "nope")


def test_which_runs_count() -> None:
    assert left_out_reason(scenario_run()) is None
    assert left_out_reason(scenario_run(verdict=Verdict.FAIL)) is None  # checks only
    died = scenario_run(verdict=Verdict.FAIL, sched_outcome=SchedOutcome.DIED,
                        reasons=["died"])
    assert "scheduler died" in (left_out_reason(died) or "")
    err = scenario_run(verdict=Verdict.ERROR, vm_outcome=VmOutcome.TIMEOUT,
                       reasons=["timeout"])
    assert "error: timeout" in (left_out_reason(err) or "")


def comparison(n: int = 8, scale_b: float = 0.5) -> Comparison:
    rng = np.random.default_rng(1)
    a = [scenario_run(1 + float(rng.normal(0, 0.01)), boot=5 + float(rng.normal(0, 0.2)))
         for _ in range(n)]
    b = [scenario_run(scale_b + float(rng.normal(0, 0.01)),
                      boot=5 + float(rng.normal(0, 0.2))) for _ in range(n)]
    b.append(scenario_run(verdict=Verdict.ERROR, reasons=["vm timeout"]))
    return compare_results(a, b, a_label="scx_simple", b_label="scx_cpu0",
                           dimension="scheduler", hints=HINTS)


def test_compare_results_counts_runs_and_finds_the_drop() -> None:
    c = comparison()
    assert (c.a.used, c.b.used, c.b.runs) == (8, 8, 9)
    assert c.b.left_out and "vm timeout" in c.b.left_out[0]
    assert c.metric("work.units").outcome is MetricOutcome.WORSE
    assert c.metric("cgroup.cg_0.share_pct").outcome is MetricOutcome.NO_DIFFERENCE
    assert not c.metric("harness.boot_s").outcome.significant


def test_grouped_runs_keep_tests_apart() -> None:
    a = [scenario_run(), scenario_run(), scenario_run()]
    c = compare_results(a, a, groups=(["t1", "t1", "t2"], ["t1", "t1", "t2"]))
    names = {m.name for m in c.metrics}
    assert "t1: work.units" in names and "t2: work.units" in names
    assert len(c.metric("t1: work.units").a) == 2


# ---- gates and text ---------------------------------------------------------------------

def test_gate_rules() -> None:
    c = comparison()
    assert gate(c, [GateRule.parse("worse")])[0].startswith("work.units: worse")
    assert gate(c, [GateRule.parse("worse:gap.*")]) == []
    assert gate(c, [GateRule.parse("worse:work.units:60%")]) == []  # it fell ~50%
    assert gate(c, [GateRule.parse("worse:work.units:40%")])
    assert gate(c, [GateRule.parse("better")]) == [] or all(
        "better" in g for g in gate(c, [GateRule.parse("better")]))
    for bad in ("", "awful", "worse:x:abc", "worse:a:b:c"):
        with pytest.raises(UserError):
            GateRule.parse(bad)


def test_markdown_and_terminal() -> None:
    c = comparison()
    md = markdown(c, gate_failures=["work.units: worse"])
    assert md.startswith("### ktstr compare: scx_cpu0 vs scx_simple")
    assert "| work.units | units |" in md and "**Gate failed:**" in md
    assert "#### Harness (not gated by default)" in md
    text = terminal(c)
    assert "▼ worse" in text and "left out run 9" in text


# ---- A and B ----------------------------------------------------------------------------

def req(**kw: Any) -> RunRequest:
    return RunRequest(**{"scheduler": EEVDF, "topology": Topology(1, 1, 1, 1), **kw})


def test_dimensions() -> None:
    other = EEVDF.model_copy(update={"name": "other"})
    assert [d.dimension for d in differences(req(), req(scheduler=other))] == ["scheduler"]
    assert [d.dimension for d in differences(req(), req(kernel="7.3"))] == ["kernel"]
    args = differences(req(), req(extra_sched_args=("-x",)))
    assert [(d.dimension, d.a, d.b) for d in args] == [("scheduler args", "(none)", "-x")]
    sys_b = EEVDF.model_copy(update={"sysctls": (Sysctl("kernel.x", "1"),)})
    assert [d.dimension for d in differences(req(), req(scheduler=sys_b))] == ["sysctls"]
    assert check_one_dimension(req(), req()) == []
    with pytest.raises(UserError, match="kernel, "):
        check_one_dimension(req(), req(scheduler=sys_b, kernel="7.3"))
    with pytest.raises(UserError, match="topology"):
        check_one_dimension(req(), req(topology=Topology(1, 1, 2, 1)))


def test_interleaving_and_slots() -> None:
    # ABBA: who goes first alternates, so an order effect (the second run of a pair
    # finding the snapshot in the page cache) falls on both sides alike
    assert interleaved(3) == [("a", 1), ("b", 1), ("b", 2), ("a", 2), ("a", 3), ("b", 3)]
    firsts = [order[0] for order in zip(*[iter(interleaved(8))] * 2, strict=True)]
    assert sum(side == "a" for side, _ in firsts) == 4
    assert parallel_slots(1, 2) == 2 and parallel_slots(4, 2) == 1
    assert parallel_slots(2, 8) == 4


def test_run_pair_writes_each_run_and_turns_harness_errors_into_error_runs(
        tmp_path: Path) -> None:
    calls: list[str] = []

    def fake(r: RunRequest) -> RunResult:
        calls.append(r.kernel or "")
        if len(calls) == 3:
            raise InfraError("qemu died")
        return RunResult(verdict=Verdict.PASS, scheduler=r.scheduler.name)

    a, b = run_pair(req(kernel="A"), req(kernel="B"), runs=2, out_dir=tmp_path,
                    parallel=1, run=fake)
    assert calls == ["A", "B", "B", "A"]  # ABBA, one at a time
    assert b[1].verdict is Verdict.ERROR and "qemu died" in b[1].reasons[0]  # third call
    assert a[1].verdict is Verdict.PASS
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["run-01.json",
                                                                   "run-02.json"]

    def user_error(r: RunRequest) -> RunResult:
        raise UserError("bad")

    with pytest.raises(UserError):
        run_pair(req(), req(), runs=3, out_dir=tmp_path / "x", parallel=1, run=user_error)


# ---- HTML -------------------------------------------------------------------------------

def test_report_has_labelled_plots_and_no_network(tmp_path: Path) -> None:
    c = comparison()
    sidecars = [{"test": f"t.py::test_g[gauntlet-{p}-{f}-7.2.13]", "preset": p, "flags": f,
                 "kernel": {"version": "7.2.13"}, "verdict": v, "reasons": [],
                 "topology_requested": "1n1l2c1t", "runs": []}
                for p, f, v in (("tiny-1llc", "default", "pass"), ("smt-2llc", "default",
                                "fail"), ("tiny-1llc", "lb", "error"))]
    html = render(Report(comparisons=[c], sidecars=sidecars,
                         runs=[], sources=["a/", "b/"]))
    assert html.count("<svg") == 4
    for label in ("B/A per metric, coloured by outcome", "CPU share of all workers (%)",
                  "test_g: verdict per preset x flags · kernel", "smt-2llc", "lb · 7.2.13",
                  'class="pill o-worse">worse</span>'):
        assert label in html, label
    assert "<script" not in html and "https://" not in html
    assert html == render(Report(comparisons=[c], sidecars=sidecars, sources=["a/", "b/"]))


def test_report_loads_what_each_path_holds(tmp_path: Path) -> None:
    c = comparison()
    cmp_dir = tmp_path / "cmp"
    cmp_dir.mkdir()
    (cmp_dir / "comparison.json").write_text(
        json.dumps({"kind": "comparison", **c.model_dump(mode="json")}))
    run_file = tmp_path / "run.json"
    run_file.write_text(scenario_run().model_dump_json())
    rep = load_report([cmp_dir, run_file])
    assert len(rep.comparisons) == 1 and len(rep.runs) == 1
    assert rep.comparisons[0].metric("work.units").outcome is MetricOutcome.WORSE
    assert "CPU share of all workers (%)" in render(rep)


# ---- the CLI, result mode -----------------------------------------------------------------

def test_cli_compares_result_sets_and_gates(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(2)
    for side, scale in (("a", 1.0), ("b", 0.5)):
        (tmp_path / side).mkdir()
        for i in range(6):
            r = scenario_run(scale + float(rng.normal(0, 0.01)))
            (tmp_path / side / f"run-{i}.json").write_text(r.model_dump_json())
    out = tmp_path / "c.json"
    md = tmp_path / "summary.md"
    html = tmp_path / "r.html"
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json", str(out),
              "--markdown", str(md), "--html", str(html), "--fail-on", "worse:work.units"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "GATE: work.units: worse" in err
    doc = json.loads(out.read_text())
    assert doc["kind"] == "comparison" and doc["a"]["used"] == 6
    assert "<svg" in html.read_text() and "| work.units |" in md.read_text()
    with pytest.raises(SystemExit) as ok:
        main(["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--fail-on", "worse"])
    assert ok.value.code == 0
    with pytest.raises(SystemExit) as usage:
        main(["compare", str(tmp_path / "a")])
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as rep:
        main(["report", str(out), "-o", str(tmp_path / "rep.html")])
    assert rep.value.code == 0 and "<svg" in (tmp_path / "rep.html").read_text()


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from ktstr.cli.compare import need_compare_extra

    real = builtins.__import__

    def no_scipy(name: str, *args: Any, **kw: Any) -> Any:
        if name == "scipy":
            raise ImportError("No module named 'scipy'", name="scipy")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(UserError, match=r"pip install 'ktstr\[compare\]'"):
        need_compare_extra()


# ---- the pytest summary's test ids --------------------------------------------------------

def test_long_test_ids_keep_the_test_name() -> None:
    name = "test_cx_simple_disjoint_cpusets[gauntlet-smt-2llc-numa-default-7.2.13]"
    short = shorten_test_id(name, 50)
    assert len(short) == 50
    assert short.startswith("test_cx_simple_disjoint_cpusets[gauntl")
    assert short.endswith("7.2.13]") and "…" in short
    assert shorten_test_id("test_a[x]", 50) == "test_a[x]"
    very = "test_" + "x" * 80 + "[p]"
    assert len(shorten_test_id(very, 40)) == 40 and shorten_test_id(very, 40).startswith("test_")
    lines = summary_lines([{"test": "t.py::" + name, "outcome": "passed", "verdict": "pass",
                            "scheduler": "scx_simple", "kernel": {"version": "7.2.13"},
                            "topology_requested": "1n2l2c1t", "reasons": []}])
    assert lines[1].startswith("test_cx_simple_disjoint_cpusets[")
    assert MetricHint(name="x").polarity is Polarity.NEUTRAL


def test_verifier_and_gauntlet_html(tmp_path: Path) -> None:
    from ktstr.cli.testcmd import write_gauntlet_html
    from ktstr.results.model import Verdict
    from ktstr.sweep.runner import CellResult
    from ktstr.sweep.verifier import ProgramStats, VerifierDetail

    cells = []
    for kernel, preset, insns, outcome in (("7.2.13", "tiny-1llc", 900, Verdict.PASS),
                                           ("7.3.4", "tiny-1llc", 1200, Verdict.PASS),
                                           ("7.3.4", "smt-2llc", 1250, Verdict.FAIL)):
        d = VerifierDetail(scheduler="scx_simple", kernel=kernel, preset=preset,
                           topology="1n1l2c1t", build_series="7.2", programs=[
                               ProgramStats(name="simple_enqueue", verdict="success",
                                            insns=insns),
                               ProgramStats(name="simple_init", verdict="success", insns=40)])
        cells.append(CellResult(id=f"verifier/scx_simple/{kernel}/{preset}", kind="verifier",
                                outcome=outcome, detail=d.model_dump(mode="json"),
                                reasons=["load failed"] if outcome is Verdict.FAIL else []))
    html = render(Report(verifier=cells))
    for label in ("scx_simple: verified instructions per program, by kernel · topology",
                  "simple_enqueue", "7.3.4 · smt-2llc", "scx_simple: verifier cells",
                  "load failed"):
        assert label in html, label
    sidecars = tmp_path / "results"
    sidecars.mkdir()
    (sidecars / "t.ktstr.json").write_text(json.dumps({
        "test": "t.py::test_g[gauntlet-tiny-1llc-default-7.2.13]", "preset": "tiny-1llc",
        "flags": "default", "kernel": {"version": "7.2.13"}, "verdict": "pass",
        "reasons": [], "runs": []}))
    out = tmp_path / "g.html"
    write_gauntlet_html(out, sidecars, since=0.0)
    assert "test_g: verdict per preset x flags · kernel" in out.read_text()


def test_a_side_with_a_payload_says_it_runs_to_its_end() -> None:
    """``ktstr compare`` described a payload side as ``payload X for 900 s``, where 900 s
    is only a bound (issue 13, item 15); ``ktstr run`` already said it right."""
    from ktstr.cli.compare import _describe

    text = _describe(req(payload=STRESS_NG, duration_s=900))
    assert "payload stress-ng (runs to its end; bound 900 s + slack)" in text
    assert "for 900 s" not in text
    assert _describe(req(duration_s=5)).endswith("spin for 5 s")
