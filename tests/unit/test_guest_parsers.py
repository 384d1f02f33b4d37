"""Line-fed parsers of what the guest says: protocol, console and topology."""

from __future__ import annotations

import base64

from ktstr.declare.topology import Topology
from ktstr.guest.console import ConsoleEventKind, ConsoleParser
from ktstr.guest.protocol import BadMessage, Done, Event, ExecResult, Hello, parse_message
from ktstr.guest.topology import (
    format_cpulist,
    parse_cpulist,
    parse_topology_report,
    topology_diff,
)


def _b64(text: str, errors: str = "strict") -> str:
    return base64.b64encode(text.encode("utf-8", errors)).decode()


def test_messages_parse_by_type_and_decode_text() -> None:
    assert isinstance(parse_message('{"t":"hello","uptime_s":5.9,"release":"7.2"}'), Hello)
    ex = parse_message('{"t":"exec","status":3,"stdout":"4-7\\n","stderr":{"b64":"'
                       + _b64("err \udcff", errors="surrogateescape") + '"}}')
    assert isinstance(ex, ExecResult)
    assert (ex.status, ex.stdout) == (3, "4-7\n")
    assert ex.stderr.encode("utf-8", "surrogateescape") == b"err \xff"
    ev = parse_message('{"t":"event","name":"sched_attached","uptime_s":7.5,'
                       '"fields":{"ops":"simple"}}')
    assert isinstance(ev, Event) and ev.fields == {"ops": "simple"}
    assert isinstance(parse_message('{"t":"done","status":0}'), Done)


def test_a_bad_line_is_kept_not_dropped() -> None:
    bad = parse_message('{"t":"hello"')
    assert isinstance(bad, BadMessage) and bad.line == '{"t":"hello"'
    unknown = parse_message('{"t":"nope"}')
    assert isinstance(unknown, BadMessage)


RECORDED_PANIC = """\
[    6.100000] sysrq: Trigger a crash
[    6.100100] Kernel panic - not syncing: sysrq triggered crash
[    6.100200] CPU: 0 UID: 0 PID: 1 Comm: sh Not tainted 7.2.13+deb14-amd64
[    6.100300] Call Trace:
"""


def test_console_parser_finds_panic_and_keeps_its_text() -> None:
    p = ConsoleParser()
    events = [e for line in RECORDED_PANIC.splitlines() for e in p.feed(line)]
    assert [e.kind for e in events] == [ConsoleEventKind.PANIC]
    assert events[0].detail == "sysrq triggered crash"
    assert p.panic_text[0].endswith("sysrq triggered crash")
    assert "Call Trace:" in p.panic_text[-1]


def test_console_parser_classifies_int3_as_emulator_fault_and_scx_lines() -> None:
    p = ConsoleParser()
    assert p.feed("[ 3.0] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI")[0].kind is \
        ConsoleEventKind.EMULATOR_FAULT
    assert p.feed("[ 4.0] BUG: kernel NULL pointer dereference")[0].kind is ConsoleEventKind.OOPS
    ev = p.feed('[ 9.1] sched_ext: BPF scheduler "qmap" disabled (runnable task stall)')[0]
    assert ev.kind is ConsoleEventKind.SCHED_EXT_DISABLED
    assert ev.detail == "qmap: runnable task stall"
    assert p.feed("ordinary line") == []
    assert p.tail_text(1) == "ordinary line"


def test_cpulists_round_trip() -> None:
    assert parse_cpulist("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpulist("-") == []
    assert format_cpulist([0, 1, 2, 3, 8, 10, 11]) == "0-3,8,10-11"


RECORDED_2N4L2C1T = """\
online 0-7
cpu 0 package=0 die=0 core=0 siblings=0 l3=0-1
cpu 1 package=0 die=0 core=1 siblings=1 l3=0-1
cpu 2 package=1 die=1 core=0 siblings=2 l3=2-3
cpu 3 package=1 die=1 core=1 siblings=3 l3=2-3
cpu 4 package=2 die=2 core=0 siblings=4 l3=4-5
cpu 5 package=2 die=2 core=1 siblings=5 l3=4-5
cpu 6 package=3 die=3 core=0 siblings=6 l3=6-7
cpu 7 package=3 die=3 core=1 siblings=7 l3=6-7
node 0 cpulist=0-3 memkb=255824 distance=10,20
node 1 cpulist=4-7 memkb=211932 distance=20,10
"""


def test_recorded_guest_view_matches_its_request() -> None:
    seen = parse_topology_report(RECORDED_2N4L2C1T)
    assert len(seen.cpus) == 8 and len(seen.nodes) == 2 and len(seen.l3_groups) == 4
    assert topology_diff(Topology(2, 4, 2, 1), seen) == []


def test_a_different_request_gives_a_readable_diff() -> None:
    seen = parse_topology_report(RECORDED_2N4L2C1T)
    diff = topology_diff(Topology(1, 2, 2, 2), seen)
    assert "NUMA nodes: want 1, saw 2" in diff
    assert any(d.startswith("cpu0: thread siblings want 0-1, saw 0") for d in diff)
    assert any("L3 shared with want 0-3, saw 0-1" in d for d in diff)
    assert topology_diff(Topology(1, 2, 2, 1), parse_topology_report("online 0-1\n"))[0] == \
        "online CPUs: want 0-3, saw 0-1"
