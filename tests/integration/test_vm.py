"""Real kernels in real QEMU: boot, exec, topology fidelity and failure verdicts."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from ktstr.declare.presets import preset
from ktstr.declare.topology import Topology
from ktstr.guest.topology import topology_diff
from ktstr.image import builder
from ktstr.kernel.resolve import resolve_kernel
from ktstr.results.model import VmOutcome
from ktstr.run.boot import BootOutcome, boot
from ktstr.run.image import image_spec
from ktstr.run.params import exec_plan
from ktstr.vm.argv import kernel_cmdline
from ktstr.vm.host import AccelRequest, choose_accel, find_qemu
from ktstr.vm.process import is_alive
from ktstr.vm.snapshot import snapshots_enabled

pytestmark = pytest.mark.vm

KTSTR = [sys.executable, "-m", "ktstr.cli.__main__"]


def _exec(command: str, topology: Topology, tmp_path: Path, *, memory_mb: int | None = None,
          init: str | None = None, work_timeout_s: float = 60,
          boot_retries: int = 1, snapshots: bool = False) -> BootOutcome:
    kernel = resolve_kernel("7.2")
    spec = image_spec()
    if init is not None:
        spec = spec.model_copy(update={"init": init})
    initrd = builder.compose(builder.build_base(spec), builder.run_segment({}),
                             tmp_path / "initrd.img")
    accel = choose_accel(AccelRequest.AUTO, find_qemu())
    return boot(kernel=kernel.image_path, image=initrd, plan=exec_plan(command),
                cmdline=kernel_cmdline(),
                topology=topology, accel=accel, run_dir=tmp_path, memory_mb=memory_mb,
                work_timeout_s=work_timeout_s, expect_exec=True, boot_retries=boot_retries,
                snapshots=snapshots)


def test_shell_exec_separates_streams_and_returns_the_status() -> None:
    done = subprocess.run(
        [*KTSTR, "shell", "--kernel", "7.2", "--topology", "2,4,2,1", "--exec",
         "cat /sys/devices/system/node/node1/cpulist; echo oops >&2; exit 7"],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 7, done.stderr
    assert done.stdout == "4-7\n"
    assert "oops" in done.stderr


FIDELITY = ["tiny-1llc", "tiny-2llc", "odd-3llc", "smt-2llc", "smt-3llc", "numa2-4llc",
            "numa4-8llc"]


@pytest.mark.parametrize("name", FIDELITY)
def test_topology_fidelity(name: str, tmp_path: Path) -> None:
    """The guest sees the declared topology, on the path every caller takes: booted (and
    saved) the first time, or with ``KTSTR_SNAPSHOTS=0``; restored after that, when the
    topology report is checked again after the restore."""
    t = preset(name).topology
    out = _exec("true", t, tmp_path, memory_mb=max(256, 32 * t.total_cpus),
                snapshots=snapshots_enabled())
    assert out.vm_outcome is VmOutcome.OK, out.detail + "\n" + out.console_tail
    assert out.seen is not None
    assert topology_diff(t, out.seen) == [], out.seen.raw
    assert len(out.seen.l3_groups) == t.llcs
    assert len(out.seen.nodes) == t.numa_nodes


def test_kernel_panic_is_a_crashed_verdict_with_the_panic_text(tmp_path: Path) -> None:
    out = _exec("echo c > /proc/sysrq-trigger", Topology(1, 1, 1, 1), tmp_path)
    assert out.vm_outcome is VmOutcome.CRASHED
    assert "sysrq" in out.panic_text.lower()
    assert "Kernel panic" in out.panic_text


def test_silent_guest_is_a_timeout_verdict_with_the_console_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an init that boots but never says hello: the boot bound must end the run
    monkeypatch.setenv("KTSTR_TIMEOUT_SCALE", "0.05")
    silent = "#!/bin/busybox sh\necho ktstr-silent-init > /dev/console\nwhile :; do :; done\n"
    out = _exec("true", Topology(1, 1, 1, 1), tmp_path, init=silent, boot_retries=1)
    assert out.vm_outcome is VmOutcome.TIMEOUT
    assert out.retried == 1
    assert "no hello (boot)" in out.detail


def _read_line_matching(stream: IO[bytes], pattern: re.Pattern[str], bound_s: float) -> str:
    """Read lines until one matches, waiting on the pipe with one bound."""
    deadline = time.monotonic() + bound_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([stream], [], [], left)
        if not ready:
            break
        line = stream.readline().decode(errors="replace")
        if not line:
            break
        if m := pattern.search(line):
            return m.group(1)
    raise AssertionError(f"no line matching {pattern.pattern!r} within {bound_s} s")


def test_no_orphan_qemu_after_the_harness_is_sigkilled() -> None:
    harness = subprocess.Popen(
        [*KTSTR, "-v", "shell", "--kernel", "7.2", "--topology", "1,1,1,1", "--exec",
         "sleep 600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        assert harness.stderr is not None
        qemu = int(_read_line_matching(harness.stderr, re.compile(r"QEMU started \(pid (\d+)\)"),
                                       120))
        pidfd = os.pidfd_open(qemu)
        try:
            os.kill(harness.pid, signal.SIGKILL)
            harness.wait(timeout=30)
            ready, _, _ = select.select([pidfd], [], [], 30)
            assert ready, f"QEMU pid {qemu} outlived the SIGKILLed harness"
        finally:
            os.close(pidfd)
        assert not is_alive(qemu) or _is_zombie(qemu)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        if harness.stderr is not None:
            harness.stderr.close()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
