"""How QEMU is started: it dies with the harness, and under TCG it has no THP."""

from __future__ import annotations

import subprocess

import pytest

from ktstr.vm.process import pdeathsig_preexec


def _status(**kw: bool) -> dict[str, str]:
    out = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True,
                         check=True, preexec_fn=pdeathsig_preexec(**kw)).stdout
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_the_child_keeps_thp_by_default() -> None:
    status = _status()
    if "THP_enabled" not in status:
        pytest.skip("this kernel's /proc/PID/status has no THP_enabled (before 5.0)")
    assert status["THP_enabled"].strip() == "1"


def test_huge_pages_off_turns_thp_off_for_the_child_only() -> None:
    status = _status(huge_pages=False)
    if "THP_enabled" not in status:
        pytest.skip("this kernel's /proc/PID/status has no THP_enabled (before 5.0)")
    assert status["THP_enabled"].strip() == "0"
    assert _status()["THP_enabled"].strip() == "1"  # not inherited back by this process
