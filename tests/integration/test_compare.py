"""``ktstr compare`` and ``ktstr report`` on real kernels with real schedulers.

- A/A: eevdf vs eevdf and scx_simple vs scx_simple, 8 runs each on 1 vCPU: no metric
  is better, worse or different at a family-wise alpha of 0.01 (a false positive fails
  the test; only the documented statistics decide).
- Known difference: scx_cpu0 (every task on CPU 0) against scx_simple on 4 vCPUs with 4
  CPU-bound workers: total work done is worse for scx_cpu0 with a significant p-value;
  the time QEMU and the guest take to boot (before any scheduler starts) is not.

  Total work done is asserted as ``work.cpu_s``: the CPU time the four workers got,
  summed (schedstat run time). The workers are identical ``cpu_spin`` loops, so the work
  they do is their CPU time times how fast a CPU runs; a scheduler decides only the first
  factor. On hardware (or KVM with a host core per vCPU) a CPU runs at one speed, and
  work units follow CPU time. Under TCG on this 2-core host they do not: a vCPU is a host
  thread, four busy ones share two host cores (and the host's other load) while
  scx_cpu0's one busy vCPU runs alone and its idle ones cost nothing, so how fast a vCPU
  runs depends on how many are busy, which is the emulator's doing, not the guest
  scheduler's; ``work.units`` mixes the two. Measured (docs/compare.md): CPU time 0.35x
  for scx_cpu0 with work units 1.31x, the wrong way; in another run CPU time 0.25x with
  work units 0.98x (CI [0.72, 1.82]). ``work.units`` is printed here, not asserted.
- 2 runs each of the same two: inconclusive, not better or worse.
- The HTML report in headless Chromium: a screenshot with the outcome colours, plots
  present and labelled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ktstr.compare.model import Comparison, MetricOutcome
from tests.integration.oncerun import run_once

pytestmark = pytest.mark.vm

CHROMIUM = shutil.which("chromium")
RUNS = 8
#: the A/A tests' family-wise error rate (see test_a_a_reports_no_difference)
AA_ALPHA = 0.01


def ktstr(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ktstr.cli.__main__", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def load(path: Path) -> Comparison:
    doc = json.loads(path.read_text())
    assert doc.pop("kind") == "comparison"
    return Comparison.model_validate(doc)


def figures(c: Comparison, *names: str) -> str:
    """The measured figures, printed into the test log (and the closing note)."""
    lines = [f"{c.b.label} vs {c.a.label}: A {c.a.used}/{c.a.runs}, B {c.b.used}/{c.b.runs}"]
    for m in c.metrics:
        if names and m.name not in names:
            continue
        lines.append(f"  {m.name}: median A {m.median_a:.4g} B {m.median_b:.4g} "
                     f"ratio {m.ratio if m.ratio is None else round(m.ratio, 4)} "
                     f"CI [{m.ci_low}, {m.ci_high}] p {m.p:.3g} p_adj {m.p_adj:.3g} "
                     f"-> {m.outcome.value}")
    return "\n".join(lines)


def significant(c: Comparison) -> list[str]:
    return [f"{m.name}: {m.outcome.value} ({m.why})" for m in c.metrics
            if m.outcome.significant]


@pytest.mark.parametrize("scheduler", ["eevdf", "scx_simple"])
def test_a_a_reports_no_difference(scheduler: str, tmp_path: Path) -> None:
    out = tmp_path / "aa"
    # At the default family-wise alpha of 0.05 a correct comparison calls an A/A metric
    # better or worse in up to 5 % of runs, so these two tests alone failed up to 1 suite
    # run in 10 (seen once: gap.max_ms, p_adj 0.018). At 0.01 that is up to 1 in 50,
    # and the test can still fail: with 8 runs a side, sides that never overlap give
    # p = 1.6e-4, 0.0026 after Holm over 17 metrics.
    done = ktstr("compare", "--kernel", "7.2", "-s", scheduler, "-t", "1,1,1,1",
                 "--scenario", "steady", "--duration", "3", "--runs", str(RUNS),
                 "--alpha", str(AA_ALPHA), "--out", str(out), "--fail-on", "worse",
                 "--fail-on", "better")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    c = load(out / "comparison.json")
    print(figures(c))
    # a run lost to the emulator (a boot panic under TCG on a loaded host) is left out
    # and said so; the statistics use what counted
    assert c.a.used >= RUNS - 2 and c.b.used >= RUNS - 2, (c.a.left_out, c.b.left_out)
    assert c.dimension == "A/A"
    assert any(m.name == "work.units" for m in c.metrics)
    assert len(c.metrics) >= 10
    assert significant(c) == []


@pytest.fixture(scope="module")
def cpu0_vs_simple(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """scx_simple (A) against scx_cpu0 (B): 4 vCPUs, 2 cgroups x 2 cpu_spin workers; run
    once per pytest run even when xdist gives these tests to both workers (oncerun)."""

    def compare(root: Path) -> dict[str, Any]:
        done = ktstr("compare", "--kernel", "7.2", "-s", "scx_simple", "--b-scheduler",
                     "scx_cpu0", "-t", "1,1,4,1", "--scenario", "steady", "--duration", "3",
                     "--runs", str(RUNS), "--out", str(root / "cmp"),
                     "--fail-on", "worse:work.cpu_s:10%", "--markdown", str(root / "summary.md"),
                     "--html", str(root / "report.html"))
        return {"argv": done.args, "returncode": done.returncode, "stdout": done.stdout,
                "stderr": done.stderr}

    root, answer = run_once(tmp_path_factory, "known-cpu0-vs-simple", compare)
    done = subprocess.CompletedProcess(answer["argv"], answer["returncode"],
                                       answer["stdout"], answer["stderr"])
    return {"done": done, "out": root / "cmp", "root": root}


def test_cpu0_is_worse_than_simple_at_work_done(cpu0_vs_simple: dict[str, Any]) -> None:
    done = cpu0_vs_simple["done"]
    c = load(cpu0_vs_simple["out"] / "comparison.json")
    print(figures(c, "work.cpu_s", "work.units", "harness.boot_s", "cgroup.cg_0.cpu_pct",
                  "cgroup.cg_0.share_pct"))
    assert c.a.used >= RUNS - 2 and c.b.used >= RUNS - 2, (c.a.left_out, c.b.left_out)
    assert c.dimension == "scheduler" and c.a.label == "scx_simple" \
        and c.b.label == "scx_cpu0"
    work = c.metric("work.cpu_s")
    assert work.outcome is MetricOutcome.WORSE, work.why
    assert work.p_adj is not None and work.p_adj < 0.05
    assert work.ratio is not None and work.ratio < 0.9
    assert work.ci_high is not None and work.ci_high < 1
    # the --fail-on gate trips on it: exit code 1, and says which metric
    assert done.returncode == 1, done.stderr[-3000:]
    assert "GATE: work.cpu_s: worse" in done.stderr
    md = (cpu0_vs_simple["root"] / "summary.md").read_text()
    assert "**Gate failed:**" in md and "| work.cpu_s |" in md


def test_boot_time_does_not_differ_between_the_schedulers(
        cpu0_vs_simple: dict[str, Any]) -> None:
    """The guest boots before any scheduler starts: a metric that must not differ."""
    c = load(cpu0_vs_simple["out"] / "comparison.json")
    boot = c.metric("harness.boot_s")
    print(figures(c, "harness.boot_s"))
    assert not boot.outcome.significant, boot.why


def test_two_runs_each_are_inconclusive(cpu0_vs_simple: dict[str, Any],
                                         tmp_path: Path) -> None:
    """The first two runs of each side of the same real comparison, compared alone."""
    out = cpu0_vs_simple["out"]
    a = [out / "a" / "run-01.json", out / "a" / "run-02.json"]
    b = [out / "b" / "run-01.json", out / "b" / "run-02.json"]
    js = tmp_path / "two.json"
    done = ktstr("compare", *[x for p in a for x in ("--a", str(p))],
                 *[x for p in b for x in ("--b", str(p))], "--json", str(js),
                 "--fail-on", "inconclusive:work.cpu_s", timeout=120)
    c = load(js)
    print(figures(c, "work.cpu_s"))
    work = c.metric("work.cpu_s")
    assert work.outcome is MetricOutcome.INCONCLUSIVE and "too few runs" in work.why
    assert work.runs_needed is not None and work.runs_needed >= 3
    assert significant(c) == []
    assert done.returncode == 1 and "GATE: work.cpu_s: inconclusive" in done.stderr


def test_existing_result_sets_compare_like_the_run(cpu0_vs_simple: dict[str, Any],
                                                   tmp_path: Path) -> None:
    out = cpu0_vs_simple["out"]
    js = tmp_path / "again.json"
    done = ktstr("compare", str(out / "a"), str(out / "b"), "--json", str(js), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    again, first = load(js), load(out / "comparison.json")
    assert {m.name: m.outcome for m in again.metrics} == \
        {m.name: m.outcome for m in first.metrics}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh)")
def test_html_report_renders_in_headless_chromium(cpu0_vs_simple: dict[str, Any],
                                                  tmp_path: Path) -> None:
    from matplotlib.image import imread

    page: Path = cpu0_vs_simple["root"] / "report.html"
    shot = tmp_path / "report.png"
    base = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count("<svg") >= 3  # forest, distributions, cgroup bars
    for label in ("B/A per metric, coloured by outcome", "work.cpu_s",
                  "CPU share of all workers (%)", "run delay: waiting / window (%)",
                  "median B / median A"):
        assert label in html, label
    assert 'class="pill o-worse">worse</span>' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    snap = subprocess.run([*base, "--window-size=1280,2400", f"--screenshot={shot}",
                           page.as_uri()], capture_output=True, text=True, timeout=120,
                          check=False)
    assert snap.returncode == 0 and shot.is_file(), snap.stderr[-2000:]
    pixels = imread(str(shot))[:, :, :3]
    worse = (pixels - [0xD7 / 255, 0x30 / 255, 0x27 / 255]) ** 2
    assert (worse.sum(axis=2) < 0.003).sum() > 200  # the worse colour is drawn


def test_cyclictest_payload_reports_latency_percentiles(tmp_path: Path) -> None:
    """The new builtin payload on a real guest: its histogram becomes comparable metrics."""
    from ktstr.payloads.builtin import CYCLICTEST
    from ktstr.results.metricdefs import extract, payload_hints
    from ktstr.results.model import RunResult, Verdict

    done = ktstr("run", "--kernel", "7.2", "-s", "scx_simple", "-t", "1,1,1,1",
                 "--duration", "2", "--payload", "cyclictest", "--payload-arg=-D",
                 "--payload-arg=2", "--json", timeout=600)
    r = RunResult.model_validate(json.loads(done.stdout))
    assert r.verdict is Verdict.PASS, (r.reasons, done.stderr[-2000:])
    m = r.stats["payload"]["metrics"]
    assert m["samples"] > 500  # 2 s at a 1 ms interval, minus TCG's misses
    assert 0 < m["latency_min_us"] <= m["latency_p50_us"] <= m["latency_p99_us"] \
        <= m["latency_max_us"]
    names = {s.metric.name for s in extract(r, hints=payload_hints([CYCLICTEST]))}
    assert {"payload.cyclictest.latency_p99_us", "payload.cyclictest.latency_max_us",
            "payload.cyclictest.latency_avg_us"} <= names
