"""Judging a scheduler run from recorded guest events (no VM)."""

from __future__ import annotations

from ktstr.guest.protocol import Event
from ktstr.results.judge import debug_dump, exit_line, judge_scheduler, kernel_disable_reasons
from ktstr.results.model import SchedOutcome


def ev(name: str, t: float = 1.0, **fields: str) -> Event:
    return Event(t="event", name=name, uptime_s=t, fields=fields)


STARTED = ev("sched_started", 5.0, pid="90", binary="/sched/scx_simple")
ATTACHED = ev("sched_attached", 7.5, ops="simple", enable_seq="1", state="enabled")
STOPPED_OK = ev("sched_stopped", 13.0, code="0", state="disabled", how="sigint")
CLEAN_DMESG = 'sched_ext: BPF scheduler "simple" disabled (unregistered from user space)\n'


def test_eevdf_has_nothing_to_judge() -> None:
    j = judge_scheduler([ev("sched_none")], has_active_scheduling=False)
    assert j.outcome is SchedOutcome.NONE and j.reasons == []


def test_attached_and_cleanly_stopped_passes_with_timings() -> None:
    j = judge_scheduler([STARTED, ATTACHED, STOPPED_OK], has_active_scheduling=True,
                        sched_log="EXIT: unregistered from user space\n", dmesg=CLEAN_DMESG)
    assert j.outcome is SchedOutcome.ATTACHED and j.reasons == []
    assert j.ops == "simple" and j.attach_t == 7.5 and j.start_t == 5.0


def test_died_before_attach_names_exit_code_and_output() -> None:
    j = judge_scheduler([STARTED, ev("sched_exited", 5.2, code="1", phase="attach")],
                        has_active_scheduling=True, sched_log="libbpf: failed to load\n")
    assert j.outcome is SchedOutcome.DIED
    assert "exited with code 1 before attaching" in j.reasons[0]
    assert "libbpf: failed to load" in j.reasons[0]


def test_alive_but_never_enabled_is_not_attached() -> None:
    j = judge_scheduler([STARTED, ev("sched_not_attached", state="disabled", timeout_s="10")],
                        has_active_scheduling=True)
    assert j.outcome is SchedOutcome.NOT_ATTACHED
    assert j.reasons == ["not attached: scheduler alive but sched_ext state stayed "
                         "'disabled' for 10 s"]


QMAP_STALL_LOG = """\
DEBUG DUMP
================================================================================
kworker/u8:1[52] triggered exit kind 1026:
  runnable task stall (kworker/0:1[10] failed to run for 6.012s)
EXIT: runnable task stall (kworker/0:1[10] failed to run for 6.012s)
"""


def test_kernel_ejection_wins_even_though_the_process_exited_zero() -> None:
    dmesg = 'sched_ext: BPF scheduler "qmap" disabled (runnable task stall)\n'
    events = [STARTED, ATTACHED, ev("sched_exited", 12.0, code="0", phase="run",
                                    state="disabled")]
    j = judge_scheduler(events, has_active_scheduling=True, sched_log=QMAP_STALL_LOG,
                        dmesg=dmesg)
    assert j.outcome is SchedOutcome.EJECTED
    assert j.ejection_reason == "runnable task stall"
    assert 'kernel disabled BPF scheduler "qmap" (runnable task stall)' in j.reasons[0]
    assert j.debug_dump.startswith("DEBUG DUMP")


def test_exit_without_kernel_message_is_died() -> None:
    events = [STARTED, ATTACHED, ev("sched_exited", 9.0, code="137", phase="run")]
    j = judge_scheduler(events, has_active_scheduling=True, dmesg=CLEAN_DMESG)
    assert j.outcome is SchedOutcome.DIED
    assert "code 137 while the workload ran" in j.reasons[0]


def test_unclean_stop_is_reported() -> None:
    events = [STARTED, ATTACHED, ev("sched_kill_needed", pid="90"), STOPPED_OK]
    assert judge_scheduler(events, has_active_scheduling=True).outcome is \
        SchedOutcome.UNCLEAN_STOP
    still = ev("sched_stopped", code="0", state="enabled")
    j = judge_scheduler([STARTED, ATTACHED, still], has_active_scheduling=True)
    assert j.outcome is SchedOutcome.UNCLEAN_STOP and "'enabled'" in j.reasons[0]


def test_helpers_extract_lines() -> None:
    assert kernel_disable_reasons(CLEAN_DMESG) == [("simple", "unregistered from user space")]
    assert exit_line(QMAP_STALL_LOG) == "runnable task stall (kworker/0:1[10] failed to run " \
        "for 6.012s)"
    assert debug_dump("no dump here") == ""


def test_ejection_during_enable_is_ejected_not_not_attached() -> None:
    dmesg = 'sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)\n'
    events = [STARTED, ev("sched_not_attached", state="disabled", timeout_s="10")]
    j = judge_scheduler(events, has_active_scheduling=True, dmesg=dmesg)
    assert j.outcome is SchedOutcome.EJECTED and j.ejection_reason == "scx_bpf_error"
    assert "before the attach proof completed" in j.reasons[0]
