"""The views pages share (report and dashboard), on a real run's result: a 7.2 guest
where scx_qmap -e 100 hits scx_bpf_error (recorded from ``ktstr run --json``)."""

from __future__ import annotations

import json
from pathlib import Path

from ktstr.results.html import LabelledRun, Report, render
from ktstr.results.model import RunResult, Verdict
from ktstr.results.views import (
    NO_VERDICT,
    MatrixEntry,
    environment,
    log_block,
    run_detail,
    verdict_css,
    verdict_matrix,
)

DATA = Path(__file__).parent / "data" / "run-scx_qmap-error.json"


def real_run() -> RunResult:
    return RunResult.model_validate(json.loads(DATA.read_text()))


def test_run_detail_puts_what_decided_the_verdict_first() -> None:
    d = run_detail(real_run())
    assert d.verdict is Verdict.FAIL
    assert d.headline.startswith("FAIL scx_qmap on 7.2.13 1n2l2c1t: ejected")
    assert d.reasons == real_run().reasons and "scx_bpf_error" in d.reasons[0]
    facts = {f.label: f.value for f in d.facts}
    assert facts["scheduler"] == "scx_qmap (-e 100)"
    assert facts["scheduler outcome"] == "ejected, ops=qmap, ejected: scx_bpf_error"
    assert facts["kernel"] == "7.2.13+deb14-amd64"
    assert facts["timings"].startswith("boot 8.9 s, attach 3.0 s")
    assert [e.name for e in d.timeline][:3] == ["harness_rt", "sched_started",
                                                "sched_attached"]
    assert d.timeline[2].t == "8.92" and "ops=qmap" in d.timeline[2].fields
    assert d.debug_dump.startswith("DEBUG DUMP")
    assert [b.key for b in d.logs] == ["sched-log", "kernel-log", "console"]
    assert d.reproducer.startswith("ktstr run --kernel 7.2.13 --scheduler scx_qmap")


def test_log_block_keeps_the_tail_and_says_how_much_it_left_out() -> None:
    b = log_block("x", "X", "\n".join(f"line {i}" for i in range(1000)), max_lines=10)
    assert b.cut == 990 and b.text.splitlines() == [f"line {i}" for i in range(990, 1000)]
    assert log_block("x", "X", "short").cut == 0


def test_verdict_matrix_places_cells_and_counts_verdicts() -> None:
    entries = [MatrixEntry(row="scx_simple", column="7.2 · 1,2,2,1", label="pass",
                           css="pass", href="/j/1"),
               MatrixEntry(row="scx_qmap", column="7.2 · 1,2,2,1", label="fail", css="fail"),
               MatrixEntry(row="scx_simple", column="7.3 · 1,2,2,1", label="queued",
                           css=NO_VERDICT),
               MatrixEntry(row="scx_simple", column="7.2 · 1,2,2,1", label="pass",
                           css="pass")]
    m = verdict_matrix(entries, title="t", row_label="scheduler", column_label="kernel")
    assert m.columns == ["7.2 · 1,2,2,1", "7.3 · 1,2,2,1"]
    assert [r.label for r in m.rows] == ["scx_simple", "scx_qmap"]
    assert [[len(c) for c in r.cells] for r in m.rows] == [[2, 1], [1, 0]]  # a repeat
    assert [(c.label, c.n) for c in m.counts] == [("pass", 2), ("fail", 1), ("queued", 1)]
    assert verdict_css("error") == "error" and verdict_css("timed_out") == NO_VERDICT


def test_matrix_renders_as_a_table_with_links_and_colours() -> None:
    m = verdict_matrix([MatrixEntry(row="a", column="k", label="fail", css="fail",
                                    href="/dashboard/jobs/7", title="job 7: <why>")],
                       title="cells", row_label="scheduler", column_label="kernel")
    html = environment().from_string(
        '{% from "_results.html.j2" import verdict_matrix %}{{ verdict_matrix(m) }}'
    ).render(m=m)
    assert '<a class="pill v-fail" href="/dashboard/jobs/7" title="job 7: &lt;why&gt;">' \
           "fail</a>" in html
    assert "<th class=\"row\">a</th>" in html and "scheduler \\ kernel" in html


def test_the_report_shows_each_run_in_detail_with_the_shared_style() -> None:
    html = render(Report(runs=[LabelledRun(label="qmap-error", result=real_run())]))
    assert 'class="pill v-fail">fail</span>' in html
    for part in ('<ul class="reasons">', '<table class="metrics timeline">',
                 '<div class="logblock debug-dump">', '<div class="logblock sched-log">',
                 "kdamond.0[71] triggered exit kind 1025", "sched_attached"):
        assert part in html, part
    assert ".v-fail { background: #d73027; }" in html  # the style is inline
    assert "<script" not in html and "https://" not in html and "http://" not in html


def test_a_cut_log_keeps_its_head_lines_and_says_how_many_are_left_out() -> None:
    """A failing job's log grew past the page's tail with its traced rerun, and the
    command line the worker ran (the first line) went out of sight."""
    from ktstr.results.views import log_block

    text = "\n".join(["$ ktstr run --scheduler scx_qmap_error", *[f"l{i}" for i in range(10)]])
    block = log_block("job-log", "Job log", text, max_lines=4, head_lines=1)
    assert block.head == "$ ktstr run --scheduler scx_qmap_error"
    assert block.text.splitlines() == ["l6", "l7", "l8", "l9"] and block.cut == 6
    whole = log_block("job-log", "Job log", "a\nb", max_lines=4, head_lines=1)
    assert whole.head == "" and whole.cut == 0 and whole.text == "a\nb"
