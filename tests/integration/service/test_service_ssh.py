"""The SSH provider against a real sshd on 127.0.0.1: a job runs over ssh with its log
streamed back, and cancel kills the remote process group."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd import SSHD, Sshd
from svchelpers import wait_until

from ktstr.service.providers.base import ProviderJob, ProviderState
from ktstr.service.providers.ssh import SshProvider

pytestmark = pytest.mark.skipif(not SSHD.exists() or os.geteuid() != 0,
                                reason="needs /usr/sbin/sshd (openssh-server) and root")

KTSTR = str(Path(sys.executable).parent / "ktstr")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with Sshd(tmp_path / "sshd") as server:
        yield server


def test_job_runs_over_ssh_and_streams_its_log(sshd: Sshd, tmp_path: Path) -> None:
    with SshProvider(sshd.target, tmp_path / "logs") as prov:
        assert prov.available()
        [node] = prov.inventory()
        assert node.name == "ssh-01" and node.up and not node.allocated
        h = prov.kickoff(ProviderJob(job_id=1, argv=[KTSTR, "--version"]))
        done = prov.wait(h, 60)
        assert done.state is ProviderState.COMPLETED, prov.log_path(h).read_text()
        assert "ktstr" in prov.log_path(h).read_text()
        bad = prov.kickoff(ProviderJob(job_id=2, argv=["sh", "-c", "echo oops; exit 3"]))
        failed = prov.wait(bad, 60)
        assert failed.state is ProviderState.FAILED and failed.exit_code == 3
        assert "oops" in prov.log_path(bad).read_text()


def test_cancel_kills_the_remote_process_group(sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {marker}; echo started; wait"
    with SshProvider(sshd.target, tmp_path / "logs") as prov:
        h = prov.kickoff(ProviderJob(job_id=3, argv=["sh", "-c", script]))
        wait_until(lambda: "started" in prov.log_path(h).read_text(), 30,
                   "the remote job to start")
        assert prov.status(h).state is ProviderState.RUNNING
        child = int(marker.read_text())
        prov.cancel(h)
        assert prov.wait(h, 30).state is ProviderState.CANCELLED

        def gone() -> bool:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"

        wait_until(gone, 15, "the remote sleep (a grandchild) to be killed")
