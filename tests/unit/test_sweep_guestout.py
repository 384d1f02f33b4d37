"""Parsing what a verifier cell's guest prints, from recorded transcripts."""

from __future__ import annotations

from pathlib import Path

from ktstr.results.model import Verdict
from ktstr.sweep import guestout as g
from ktstr.sweep.cells import KernelEntry, VerifierCell
from ktstr.sweep.verifier import VerifierDetail, judge_cell

GOLDEN = Path(__file__).parent / "golden" / "sweep"
QMAP_ON_73 = (GOLDEN / "qmap-7.2build-on-7.3.4.txt").read_text()

PASS_OUTPUT = """\
@@ktstr-verify:veristat_csv@@
file_name,prog_name,verdict,duration,total_insns,total_states,peak_states,stack_depth,max_stack_depth
scx_simple.bpf.o,simple_enqueue,success,10321,42,3,3,32,32
scx_simple.bpf.o,simple_select_cpu,success,26281,34,2,2,8,16
@@ktstr-verify:veristat_rc@@
0
@@ktstr-verify:veristat_err@@
@@ktstr-verify:progs_before@@
@@ktstr-verify:state@@
enabled
@@ktstr-verify:attach_window@@
7.10 8.65
@@ktstr-verify:ops@@
simple
@@ktstr-verify:progs_loaded@@
30\t27\t36\t376\t240\tsimple_select_c
32\t27\t42\t416\t256\tsimple_enqueue
@@ktstr-verify:bpftool_json@@
[{"id":30,"type":"struct_ops","name":"simple_select_cpu","pids":[{"pid":143,"comm":"scx_simple"}]},
 {"id":32,"type":"struct_ops","name":"simple_enqueue"}]
@@ktstr-verify:sched_rc@@
0
@@ktstr-verify:sched_log@@
EXIT: unregistered from user space
@@ktstr-verify:end@@
"""

CELL = VerifierCell(scheduler="scx_qmap", kernel=KernelEntry(spec="7.3", version="7.3.4",
                                                             key="k"),
                    preset="tiny-1llc", topology="1n1l4c1t", build_series="7.2")


def base() -> VerifierDetail:
    return VerifierDetail(scheduler=CELL.scheduler, kernel="7.3.4", preset="tiny-1llc",
                          topology="1n1l4c1t", build_series="7.2")


def test_sections_and_veristat_csv() -> None:
    sec = g.split_sections(QMAP_ON_73)
    assert sec["state"] == "disabled" and sec["veristat_rc"] == "95"
    rows = g.parse_veristat_csv(sec["veristat_csv"])
    assert len(rows) == 20 and rows[0].prog == "qmap_cgroup_init"
    assert all(r.verdict is g.ProgVerdict.FAILURE for r in rows)
    assert g.parse_veristat_csv("garbage\n1,2") == []


def test_qmap_7_2_build_on_7_3_fails_with_the_kernels_reason() -> None:
    outcome, reasons, d = judge_cell(CELL, g.split_sections(QMAP_ON_73), has_object=True,
                                     base=base())
    assert outcome is Verdict.FAIL
    why = "libbpf: struct_ops init_kern qmap_ops: Cannot find member cgroup_init in kernel BTF"
    assert d.failure_reason == why
    assert len(d.failed_programs) == 20 and not d.attached
    assert reasons[0].startswith("20 of 20 programs failed verification")
    assert reasons[1].startswith("the scheduler did not reach state=enabled (state=disabled)")
    assert why in reasons[1]
    assert "Cannot find member cgroup_init" in d.load_log


def test_pass_joins_veristat_with_the_running_schedulers_programs() -> None:
    outcome, reasons, d = judge_cell(CELL, g.split_sections(PASS_OUTPUT), has_object=True,
                                     base=base())
    assert outcome is Verdict.PASS, reasons
    sel = d.program("simple_select_cpu")
    assert sel is not None
    # the kernel keeps 15 characters of the name; bpftool's full name is used
    assert sel.insns == 34 and sel.loaded_insns == 36 and sel.verified_insns == 36
    assert (sel.stack_depth, sel.max_stack_depth, sel.states, sel.peak_states) == (8, 16, 2, 2)
    assert sel.xlated_bytes == 376 and d.attach_s == 1.55 and d.ops == "simple"


def test_missing_end_marker_is_an_error_and_no_rows_is_a_failure() -> None:
    cut = PASS_OUTPUT.split("@@ktstr-verify:sched_rc@@", maxsplit=1)[0]
    assert judge_cell(CELL, g.split_sections(cut), has_object=True, base=base())[0] \
        is Verdict.ERROR
    no_rows = PASS_OUTPUT.replace("scx_simple.bpf.o,simple", "x,").replace(",success,", ",")
    outcome, reasons, _ = judge_cell(CELL, g.split_sections(no_rows), has_object=True,
                                     base=base())
    assert outcome is Verdict.FAIL and "veristat reported no programs" in reasons[0]


def test_short_names_match_only_when_unique() -> None:
    progs = g.parse_proginfo("1\t27\t5\t8\t8\tabcdefghijklmno\n2\t27\t6\t8\t8\tother\nbad line")
    assert [p.id for p in progs] == [1, 2]
    assert g.match_loaded("abcdefghijklmnopq", progs) is progs[0]
    assert g.match_loaded("other", progs) is progs[1]
    twice = [*progs, progs[0].model_copy(update={"id": 3})]
    assert g.match_loaded("abcdefghijklmnopq", twice) is None


def test_verbose_log_split_and_verifier_reason() -> None:
    text = ("libbpf: prog 'a': BPF program load failed: -EACCES\n"
            "PROCESSING x.bpf.o/big_loop, DURATION US: 5, VERDICT: failure, VERIFIER LOG:\n"
            "0: (b7) r1 = 0\n1: R7 invalid mem access 'scalar'\n"
            "processed 1234 insns (limit 1000000) max_states_per_insn 4\n")
    head, progs = g.split_verbose_log(text)
    assert head.startswith("libbpf: prog 'a'")
    assert progs["big_loop"].endswith("max_states_per_insn 4")
    assert g.failure_reason(progs["big_loop"]) == "1: R7 invalid mem access 'scalar'"
    assert g.failure_reason("", "nothing here") == ""


def test_collapse_repeated_blocks() -> None:
    block = ["10: r1 += 1", "11: if r1 < 5 goto pc-2"]
    text = "\n".join(["start", *block * 6, "end"])
    assert g.collapse_repeats(text).splitlines() == [
        "start", *block, "--- 5 identical iterations omitted ---", "end"]
    single = "\n".join(["a"] * 4 + ["b"])
    assert g.collapse_repeats(single).splitlines() == [
        "a", "--- 3 identical iterations omitted ---", "b"]
    assert g.collapse_repeats("a\na\nb") == "a\na\nb"  # nothing worth saving
    distinct = "\n".join(f"{i}: r{i % 3} = {i}" for i in range(50))
    assert g.collapse_repeats(distinct) == distinct


def test_flag_threshold() -> None:
    assert not g.flagged(750_000) and g.flagged(750_001)
