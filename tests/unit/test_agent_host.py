"""The real ktstr-agent, run on the host with the plan on stdin (``agent -``): every
message it sends validates against the host's models, and text of any bytes survives
the trip exactly. (The same in a real guest: tests/integration/test_agent.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ktstr.guest.native import agent_binary
from ktstr.guest.protocol import (
    BadMessage,
    Done,
    Event,
    ExecResult,
    Hello,
    Log,
    RunPlan,
    TopologyReport,
    parse_message,
)
from ktstr.run.params import exec_plan

#: quotes, backslashes, newlines, tabs, UTF-8, and bytes that are not UTF-8
TRICKY = (b'q"uote \\back\\slash\n\ttab \\n literal \xc3\xa9t\xc3\xa9 \xe2\x82\xac \x01\x7f'
          b" \xff\xfe invalid\n")


def _agent(plan: RunPlan | str) -> list[object]:
    line = plan if isinstance(plan, str) else plan.line()
    done = subprocess.run([str(agent_binary()), "agent", "-"], input=line.encode(),
                          capture_output=True, timeout=60, check=False)
    return [parse_message(raw) for raw in done.stdout.decode("ascii").splitlines()]


def _octal(data: bytes) -> str:
    return "".join(f"\\{b:03o}" for b in data)


def test_every_message_validates_and_bytes_come_back_exactly() -> None:
    cmd = f"printf '{_octal(TRICKY)}'; printf '{_octal(TRICKY[::-1])}' >&2; exit 5"
    msgs = _agent(exec_plan(cmd))
    assert not [m for m in msgs if isinstance(m, BadMessage)], msgs
    kinds = [type(m) for m in msgs]
    assert kinds == [Hello, TopologyReport, ExecResult, Done], kinds
    ex = msgs[2]
    assert isinstance(ex, ExecResult) and ex.status == 5
    assert ex.stdout.encode("utf-8", "surrogateescape") == TRICKY
    assert ex.stderr.encode("utf-8", "surrogateescape") == TRICKY[::-1]
    hello, done = msgs[0], msgs[3]
    assert isinstance(hello, Hello) and isinstance(done, Done)
    assert hello.processes is not None and done.processes is not None
    assert done.processes > hello.processes  # the command forked


def test_a_bad_plan_is_reported_with_its_position() -> None:
    msgs = _agent('{"mode": "exec", "command": \n')
    logs = [m for m in msgs if isinstance(m, Log)]
    assert logs and "bad run plan at line 1" in logs[0].msg, msgs
    assert isinstance(msgs[-1], Done) and msgs[-1].status == 2


def test_the_plan_schema_is_what_the_host_sends() -> None:
    plan = exec_plan("true")
    assert json.loads(plan.line())["mode"] == "exec"
    assert RunPlan.model_validate_json(plan.line()) == plan


def test_every_blob_the_host_reads_is_one_the_agent_sends() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).parents[2] / "ktstr"
    host = "\n".join(p.read_text() for p in root.rglob("*.py"))
    agent = "\n".join(p.read_text() for p in (root / "guest" / "native").glob("*.c"))
    read = set(re.findall(r'blobs(?:\.get\(|\[)"([a-z_]+)"', host))
    read |= set(re.findall(r'extra\.get\("([a-z_]+)"', host))
    sent = set(re.findall(r'emit_blob(?:_file)?\("([a-z_]+)"', agent))
    assert read and read <= sent, sorted(read - sent)


def _send_files(tmp_path: Path, *archives: bytes, command: str) -> list[object]:
    """The agent fed ``files`` header lines and raw archives, then an exec plan, with
    KTSTR_AGENT_ROOT at ``tmp_path/root``; what it said."""
    from ktstr.guest.protocol import FilesHeader

    stream = b"".join(FilesHeader(size=len(a)).line().encode() + a for a in archives)
    stream += exec_plan(command).line().encode()
    done = subprocess.run([str(agent_binary()), "agent", "-"], input=stream,
                          capture_output=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "KTSTR_AGENT_ROOT":
                               str(tmp_path / "root"), "TMPDIR": str(tmp_path)})
    return [parse_message(raw) for raw in done.stdout.decode("ascii").splitlines()]


def _events(msgs: list[object], name: str) -> list[Event]:
    return [m for m in msgs if isinstance(m, Event) and m.name == name]


def test_files_sent_before_the_plan_are_unpacked_whole(tmp_path: Path) -> None:
    """The framing a restored guest gets its run's files by: a ``files`` header line,
    that many raw bytes (a cpio archive), then the plan; the agent unpacks the archive
    as it arrives (here under KTSTR_AGENT_ROOT) before it runs the plan."""
    from ktstr.image.builder import run_segment

    big = bytes(range(256)) * 4096 + b"\n"  # 1 MiB of every byte value, over many reads
    archive = run_segment({"/include-files/a.bin": big, "/include-files/b.txt": b"hi\n"})
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "want").write_bytes(big)
    msgs = _send_files(tmp_path, archive, command=(
        f"cat {root}/include-files/b.txt; cmp {root}/include-files/a.bin {tmp_path}/want"))
    got = _events(msgs, "files_received")
    assert got and got[0].fields["bytes"] == str(len(archive)), msgs
    assert not _events(msgs, "setup_failed"), msgs
    ex = next(m for m in msgs if isinstance(m, ExecResult))
    assert ex.status == 0 and ex.stdout == "hi\n", ex


def test_every_entry_kind_is_unpacked_and_replaces_what_was_there(tmp_path: Path) -> None:
    """Directories with their modes, executables, hard links, symlinks; a second archive
    after the first; a file already in the guest is replaced (as ``cpio -u`` did)."""
    import io

    from ktstr.image.cpio import CpioWriter

    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("old")
    first, second = io.BytesIO(), io.BytesIO()
    with CpioWriter(first) as w:
        w.add_dir("/opt/private", mode=0o700)
        w.add_file("/usr/bin/tool", b"#!/bin/sh\necho new\n", mode=0o755,
                   links=["/usr/bin/tool2"])
        w.add_symlink("/usr/lib/libx.so.1", "libx.so.1.2.3")
        w.add_file("/usr/lib/libx.so.1.2.3", b"\x7fELF", mode=0o644)
    with CpioWriter(second) as w:
        w.add_file("/opt/d/conf", b"k=v\n")
    msgs = _send_files(tmp_path, first.getvalue(), second.getvalue(), command=(
        f"cd {root} && usr/bin/tool && stat -c '%a %h' opt/private usr/bin/tool usr/bin/tool2 && "
        "readlink usr/lib/libx.so.1 && cat usr/lib/libx.so.1 opt/d/conf | od -c | head -1"))
    assert not _events(msgs, "setup_failed"), msgs
    assert len(_events(msgs, "files_received")) == 2, msgs
    ex = next(m for m in msgs if isinstance(m, ExecResult))
    assert ex.status == 0, ex
    assert ex.stdout.splitlines()[:5] == ["new", "700 2", "755 2", "755 2", "libx.so.1.2.3"], ex
    assert "E   L   F   k   =   v" in ex.stdout, ex


def test_a_bad_archive_is_a_setup_failure_and_the_channel_stays_in_step(
        tmp_path: Path) -> None:
    """An entry that escapes the root, or bytes that are not cpio at all: ``setup_failed``
    names it, nothing lands outside the root, and the plan after it still runs."""
    import io

    from ktstr.image.cpio import CpioWriter

    (tmp_path / "root").mkdir()
    escape = io.BytesIO()
    with CpioWriter(escape) as w:
        w.add_file("/ok.txt", b"fine\n")
    bad_name = escape.getvalue().replace(b"ok.txt", b"../x.t")  # same length
    junk = b"not a cpio archive at all" * 10
    msgs = _send_files(tmp_path, bad_name, junk, command="echo ran")
    failed = _events(msgs, "setup_failed")
    assert len(failed) == 2, msgs
    assert "../x.t" in failed[0].fields["error"], failed
    assert "not a newc cpio header" in failed[1].fields["error"], failed
    assert not (tmp_path / "x.t").exists()
    ex = next(m for m in msgs if isinstance(m, ExecResult))
    assert ex.status == 0 and ex.stdout == "ran\n", ex
