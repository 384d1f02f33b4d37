"""VM snapshots on a real kernel (7.2.13; 7.3 in the run test) under QEMU: the first VM of
a key boots and saves, the next restores; a restored guest gets its own files, clock and
entropy; a corrupt snapshot and a changed key input fall back to a cold boot; --cold-boot
uses none. Each test has its own snapshot directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktstr.declare.topology import Topology
from ktstr.results.model import Verdict
from ktstr.run.execute import run_scheduler
from ktstr.run.request import RunRequest
from ktstr.schedulers.examples import SCX_SIMPLE
from ktstr.vm.snapshot import STATE, SnapshotStore

pytestmark = pytest.mark.vm

KTSTR = [sys.executable, "-m", "ktstr.cli.__main__"]
PROBE = ("nproc; cat /sys/devices/system/cpu/online; date +%s; "
         "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /include-files/note.txt")


@pytest.fixture
def snaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "snapshots"
    monkeypatch.setenv("KTSTR_SNAPSHOT_DIR", str(d))
    monkeypatch.delenv("KTSTR_SNAPSHOTS", raising=False)
    return d


def _shell(note: Path, *extra: str, topology: str = "1,1,2,1") -> tuple[list[str], str]:
    done = subprocess.run(
        [*KTSTR, "shell", "--kernel", "7.2", "--topology", topology, "-i", str(note),
         *extra, "--exec", PROBE],
        check=False, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    boot = [ln for ln in done.stderr.splitlines() if ln.startswith("ktstr: boot: ")]
    assert len(boot) == 1, done.stderr
    return done.stdout.splitlines(), boot[0]


def test_first_vm_saves_the_next_restores_with_its_own_files_clock_and_entropy(
        snaps: Path, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("first\n")
    first, how = _shell(note)
    assert "cold (no snapshot of this VM yet; saved" in how
    assert len(SnapshotStore(snaps).entries()) == 1
    outs = [first]
    for text in ("second\n", "third\n"):
        note.write_text(text)
        out, how = _shell(note)
        assert how.startswith("ktstr: boot: restored (snapshot "), how
        outs.append(out)
    for out, text in zip(outs, ("first", "second", "third"), strict=True):
        nproc, online, clock, _rand, seen_note = out
        assert (nproc, online, seen_note) == ("2", "0-1", text)  # the run's own file
        assert abs(int(clock) - time.time()) < 120  # the host's clock, not the snapshot's
    assert len({out[3] for out in outs}) == 3  # no two guests share their random bytes
    assert len(SnapshotStore(snaps).entries()) == 1


def test_a_corrupt_snapshot_falls_back_to_a_cold_boot_and_is_made_again(
        snaps: Path, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("ok\n")
    _shell(note)
    (entry,) = SnapshotStore(snaps).entries()
    state = snaps / entry.digest / STATE
    with open(state, "r+b") as fh:  # same size, garbage where QEMU's header is
        fh.write(b"\xde\xad\xbe\xef" * 1024)
    out, how = _shell(note)
    assert out[0] == "2" and out[-1] == "ok"  # the command still ran, on a cold boot
    assert "cold (no snapshot of this VM yet; saved" in how
    assert f"snapshot {entry.digest[:12]} discarded: loading" in how
    _, again = _shell(note)
    assert again.startswith("ktstr: boot: restored"), again


def test_a_changed_key_input_gets_its_own_snapshot_and_cold_boot_uses_none(
        snaps: Path, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("x\n")
    _shell(note)
    out, how = _shell(note, topology="1,2,1,1")  # another topology: another key
    assert "cold (no snapshot of this VM yet" in how and out[1] == "0-1"
    assert len(SnapshotStore(snaps).entries()) == 2
    _, how = _shell(note, "--cold-boot")
    assert how == "ktstr: boot: cold (snapshots off)"
    assert len(SnapshotStore(snaps).entries()) == 2


@pytest.mark.parametrize("kernel", ["7.2", "7.3"])
def test_a_scheduler_run_restored_passes_like_a_cold_one(snaps: Path, kernel: str) -> None:
    req = RunRequest(scheduler=SCX_SIMPLE, kernel=kernel, topology=Topology(1, 2, 1, 1),
                     duration_s=3)
    cold = run_scheduler(req)
    warm = run_scheduler(req)
    assert cold.verdict is Verdict.PASS and warm.verdict is Verdict.PASS, \
        (cold.reasons, warm.reasons)
    assert cold.boot.startswith("cold (no snapshot of this VM yet; saved")
    assert warm.boot.startswith("restored (snapshot ")
    assert warm.sched_ops == "simple" and warm.topology_diff == []
