"""A real single-node Slurm cluster in a tmp dir (munged, slurmctld, slurmd as root, cgroup
plugins off), for the Slurm provider tests; every daemon is stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from sshd import free_port
from svchelpers import wait_until

MUNGED = Path("/usr/sbin/munged")
SLURMCTLD = Path("/usr/sbin/slurmctld")
SLURMD = Path("/usr/sbin/slurmd")


def slurm_missing() -> str | None:
    """Why Slurm cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (slurmd runs jobs as root here)"
    for tool in (MUNGED, SLURMCTLD, SLURMD):
        if not tool.exists():
            return f"{tool} is missing (apt-get install slurm-wlm munge)"
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (slurm-client)"
    return None


def slurm_conf(root: Path, host: str, ctld_port: int, slurmd_port: int) -> str:
    """The cluster's slurm.conf (pure)."""
    return "\n".join([
        "ClusterName=ktstr", f"SlurmctldHost={host}", f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"AuthInfo=socket={root / 'munge.sock'}",
        "CredType=cred/munge", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none", "ReturnToService=2", "MinJobAge=3600",
        f"StateSaveLocation={root / 'state'}", f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}", f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}", f"SlurmdLogFile={root / 'slurmd.log'}",
        f"NodeName={host} CPUs=2 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


class SlurmCluster:
    """``with SlurmCluster(root) as sc:``; ``sc.conf`` is its slurm.conf, ``sc.env`` the
    environment for Slurm commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.root / log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.root.glob("*.log")) + sorted(
                             self.root.glob("*.out")))

    def __enter__(self) -> SlurmCluster:
        root = self.root
        for sub in ("state", "spool"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf = root / "slurm.conf"
        self.conf.write_text(slurm_conf(root, self.host, free_port(), free_port()))
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        try:
            self._start([str(MUNGED), "-F", "-f", "--key-file", str(key), "--socket",
                         str(root / "munge.sock"), "--pid-file", str(root / "munged.pid"),
                         "--log-file", str(root / "munged.log"), "--seed-file",
                         str(root / "munge.seed")], "munged.out")
            wait_until(lambda: (root / "munge.sock").exists() or self._died(), 20,
                       "munged to listen")
            self._start([str(SLURMCTLD), "-D", "-f", str(self.conf)], "slurmctld.out")
            self._start([str(SLURMD), "-D", "-f", str(self.conf)], "slurmd.out")
            wait_until(self._idle, 60, "the Slurm node to be idle")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _died(self) -> bool:
        for p in self.procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args[0]} exited {p.returncode}:\n{self.logs()}")
        return False

    def _idle(self) -> bool:
        self._died()
        done = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T"],
                              capture_output=True, text=True, env=self.env, check=False,
                              timeout=30)
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def run(self, *argv: str) -> str:
        done = subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                              check=True, timeout=30)
        return done.stdout

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):  # slurmd, slurmctld, then munged
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
