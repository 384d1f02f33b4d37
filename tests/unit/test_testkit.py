"""The pytest plugin with a scripted run (no VM): ids, verdict mapping, sidecars."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ktstr.declare.flags import flag, flag_profiles
from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import Topology
from ktstr.errors import DeclarationError
from ktstr.results.model import RunResult, SchedOutcome, Verdict
from ktstr.run.request import RunRequest
from ktstr.testkit import ktstr_test
from ktstr.testkit.budget_select import Candidate, features, select
from ktstr.testkit.execute import judge
from ktstr.testkit.spec import spec_of
from ktstr.testkit.variants import KernelChoice, expand_variants
from ktstr.vm.budget import cpu_tokens

pytest_plugins = ["pytester"]


@flag_profiles
class Flags:
    slow = flag(args=["-s"])
    fast = flag(args=["-f"], requires=["slow"])


FLAGGED = Scheduler(name="flagged", topology=(1, 2, 2, 1), flags=Flags)
K72 = KernelChoice(spec="7.2", label="7.2.13")
K73 = KernelChoice(spec="7.3", label="7.3.4")


def _body(ctx: object) -> None:
    return None


def test_ids_inherit_scheduler_topology_and_add_kernels_only_when_several() -> None:
    spec = spec_of(ktstr_test(scheduler=FLAGGED, threads=2)(_body))
    assert spec is not None
    assert [v.id for v in expand_variants(spec, [K72])] == ["1n2l2c2t"]
    assert [v.id for v in expand_variants(spec, [K72, K73])] == ["1n2l2c2t-7.2.13",
                                                                  "1n2l2c2t-7.3.4"]


def test_gauntlet_is_presets_times_profiles_filtered_by_constraints_and_flags() -> None:
    spec = spec_of(ktstr_test(scheduler=FLAGGED, max_cpus=4, excluded_flags=["fast"])(_body))
    assert spec is not None
    ids = [v.id for v in expand_variants(spec, [K72], gauntlet=True)]
    assert ids == ["gauntlet-tiny-1llc-default-7.2.13", "gauntlet-tiny-1llc-slow-7.2.13",
                   "gauntlet-tiny-2llc-default-7.2.13", "gauntlet-tiny-2llc-slow-7.2.13"]


def test_bad_attributes_fail_at_decoration_with_the_test_named() -> None:
    with pytest.raises(DeclarationError, match=r"_body.*flag 'nope' is not a flag"):
        ktstr_test(scheduler=FLAGGED, required_flags=["nope"])(_body)
    with pytest.raises(DeclarationError, match=r"config= needs a scheduler with config_file_def"):
        ktstr_test(config="{}")(_body)
    with pytest.raises(DeclarationError, match=r"topology: .*multiple of numa_nodes"):
        ktstr_test(numa_nodes=2, llcs=3)(_body)
    with pytest.raises(TypeError, match=r"unknown argument\(s\) max_spead_pct"):
        ktstr_test(max_spead_pct=3)
    with pytest.raises(TypeError, match=r"exactly one argument named 'ctx'"):
        ktstr_test()(lambda c: None)


def _result(verdict: Verdict, reasons: list[str] | None = None) -> RunResult:
    return RunResult(verdict=verdict, reasons=reasons or [], scheduler="s",
                     sched_outcome=SchedOutcome.ATTACHED)


def test_verdicts_map_to_pytest_outcomes_and_expect_err_inverts() -> None:
    spec = spec_of(ktstr_test()(_body))
    neg = spec_of(ktstr_test(expect_err=True)(_body))
    assert spec is not None and neg is not None
    assert judge([_result(Verdict.PASS)], spec)[0] == "passed"
    assert judge([_result(Verdict.FAIL, ["died"])], spec)[0] == "failed"
    assert judge([_result(Verdict.SKIP, ["no sched_ext"])], spec) == ("skipped", "no sched_ext")
    assert judge([_result(Verdict.ERROR, ["timeout"])], neg)[0] == "failed"
    assert judge([_result(Verdict.FAIL, ["died"])], neg)[0] == "passed"
    assert judge([_result(Verdict.PASS)], neg)[0] == "failed"
    assert "never ran anything" in judge([], spec)[1]


def test_cpu_tokens_limit_concurrency(tmp_path: Path) -> None:
    inside: list[int] = []
    peak: list[int] = []
    gate = threading.Barrier(3, timeout=10)

    def vm() -> None:
        gate.wait()
        with cpu_tokens(1, 2, tmp_path):
            inside.append(1)
            peak.append(len(inside))
            inside.pop()

    threads = [threading.Thread(target=vm) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(peak) == 3 and max(peak) <= 2
    with cpu_tokens(8, 2, tmp_path) as n:
        assert n == 2


def test_budget_selection_covers_most_per_second() -> None:
    def cand(i: int, sched: str, t: Topology) -> Candidate:
        return Candidate(nodeid=f"t{i}", scheduler=sched, flags="default", kernel="7.2",
                         topology=t, duration_s=3)

    cands = [cand(0, "a", Topology(1, 1, 4, 1)), cand(1, "a", Topology(1, 1, 4, 1)),
             cand(2, "b", Topology(1, 2, 2, 2)), cand(3, "a", Topology(1, 4, 8, 2))]
    picked, covered = select(cands, budget_s=60)
    assert [c.nodeid for c in picked] == ["t0", "t2"]
    assert features(cands[2]) <= covered
    assert select(cands, budget_s=1)[0] == []


PLUGIN_TEST = '''
from ktstr import ktstr_test
from ktstr.schedulers.examples import SCX_SIMPLE

@ktstr_test(scheduler=SCX_SIMPLE, duration_s=2)
def test_passes(ctx):
    r = ctx.run()
    assert r.scheduler == "scx_simple"

@ktstr_test(scheduler=SCX_SIMPLE, extra_sched_args=["--die"], expect_err=True)
def test_negative(ctx):
    ctx.run()

@ktstr_test(scheduler=SCX_SIMPLE, extra_sched_args=["--die"])
def test_fails(ctx):
    ctx.run()

@ktstr_test(llcs=64, cores=8)
def test_too_big(ctx):
    ctx.run()
'''


def test_plugin_end_to_end_with_a_scripted_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fake_run(req: RunRequest, progress: object = None) -> RunResult:
        dies = "--die" in req.extra_sched_args
        return RunResult(verdict=Verdict.FAIL if dies else Verdict.PASS,
                         reasons=["died: scheduler exited with code 1"] if dies else [],
                         scheduler=req.scheduler.name, topology_requested=req.topology.label,
                         reproducer="ktstr run ...")

    monkeypatch.setattr("ktstr.run.execute.run_scheduler", fake_run)
    monkeypatch.setenv("KTSTR_BUDGET_DIR", str(tmp_path / "slots"))
    pytester.makepyfile(test_sched=PLUGIN_TEST)
    results_dir = tmp_path / "results"
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider",
                                       f"--ktstr-results={results_dir}", "-rA")
    res.assert_outcomes(passed=2, failed=1, skipped=1)
    res.stdout.fnmatch_lines(["*ktstr summary*", "test_fails* failed * FAIL *died: scheduler*",
                              "test_negative* passed * FAIL *expected: died*"])
    sidecars = {p.name: json.loads(p.read_text()) for p in results_dir.glob("*.json")}
    assert len(sidecars) == 4
    passed = next(d for n, d in sidecars.items() if "test_passes" in n)
    assert passed["verdict"] == "pass" and passed["topology_requested"] == "1n2l2c1t"
    assert passed["reproducer"] == "ktstr run ..."
    too_big = next(d for n, d in sidecars.items() if "test_too_big" in n)
    assert too_big["outcome"] == "skipped" and "host cannot hold" in too_big["message"]


def test_a_vm_waiting_for_cpu_tokens_says_so(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A run blocked behind other VMs said only 'booting ...' for over a minute; now it
    says that it waits, for how many CPUs, and how long it waited."""
    from ktstr.vm import budget

    monkeypatch.setattr(budget, "QUIET_WAIT_S", 0.05)
    said: list[str] = []
    waiting = threading.Event()

    def say(msg: str) -> None:
        said.append(msg)
        if msg.startswith("waiting"):
            waiting.set()

    def vm() -> None:
        with cpu_tokens(1, 2, tmp_path, say=say):
            pass

    with cpu_tokens(2, 2, tmp_path):  # another VM holds every token
        waiter = threading.Thread(target=vm)
        waiter.start()
        assert waiting.wait(10), said
    waiter.join(10)
    assert said[0].startswith("waiting for 1 of the 2 host CPUs"), said
    assert said[-1].startswith("got 1 host CPU(s) after waiting"), said
