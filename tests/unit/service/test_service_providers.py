"""Provider command builders and output parsers, from recorded outputs (pure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ktstr.service.providers.base import ProviderJob, ProviderState
from ktstr.service.providers.slurm import (
    SlurmParams,
    parse_sbatch,
    parse_scontrol,
    parse_sinfo,
    render_kickoff,
    sbatch_argv,
    scancel_argv,
    scontrol_argv,
    slurm_status,
)
from ktstr.service.providers.ssh import (
    SshTarget,
    parse_pgid,
    remote_job_command,
    remote_kill_command,
    ssh_argv,
)

JOB = ProviderJob(job_id=7, attempt=2, argv=["ktstr", "run", "--kernel", "7.2 rc"],
                  timeout_s=125)


def test_ssh_argv_and_remote_command() -> None:
    t = SshTarget.from_connection("b1", {"host": "b1.lab", "user": "fp",
                                         "keyfile": "/k/id", "port": 2222})
    assert ssh_argv(t, "true") == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                   "-i", "/k/id", "-o", "IdentitiesOnly=yes", "-p", "2222",
                                   "-l", "fp", "b1.lab", "--", "true"]
    cmd = remote_job_command(JOB.argv)
    assert cmd.startswith("exec setsid -w sh -c ") and "'7.2 rc'" in cmd
    assert subprocess.run(["sh", "-n", "-c", cmd], check=False).returncode == 0
    assert remote_kill_command(42) == "kill -TERM -- -42"
    assert parse_pgid("ktstr-pgid 4242\n") == 4242 and parse_pgid("hello 1") is None


def test_kickoff_script(tmp_path: Path) -> None:
    text = render_kickoff(JOB, SlurmParams(partition="debug", account="lab",
                                           sbatch_args=["--exclusive"]), tmp_path / "o.log")
    assert "#SBATCH --partition=debug" in text and "#SBATCH --account=lab" in text
    assert "#SBATCH --time=3" in text and "#SBATCH --exclusive" in text
    assert text.rstrip().endswith("exec ktstr run --kernel '7.2 rc'")
    script = tmp_path / "k.sh"
    script.write_text(text)
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0


def test_slurm_argv_and_parsers() -> None:
    assert sbatch_argv(Path("/s.sh")) == ["sbatch", "--parsable", "/s.sh"]
    assert scontrol_argv("12") == ["scontrol", "show", "job", "--oneliner", "12"]
    assert scancel_argv("12") == ["scancel", "12"]
    assert parse_sbatch("12\n") == "12" and parse_sbatch("13;cluster\n") == "13"
    rec = ("JobId=12 JobName=ktstr-7-2 UserId=root(0) JobState=CANCELLED Reason=None "
           "Dependency=(null) ExitCode=0:15 RunTime=00:00:03")
    fields = parse_scontrol(rec)
    assert fields["JobState"] == "CANCELLED"
    ext = slurm_status(fields, cancelled_by_us=False)
    assert ext.state is ProviderState.FAILED and "outside ktstr" in (ext.reason or "")
    assert slurm_status(fields, cancelled_by_us=True).state is ProviderState.CANCELLED
    pend = slurm_status(parse_scontrol("JobState=PENDING Reason=Resources"), False)
    assert pend.state is ProviderState.PENDING and pend.reason == "Resources"
    failed = slurm_status(parse_scontrol("JobState=FAILED Reason=NonZeroExitCode "
                                         "ExitCode=3:0"), False)
    assert failed.exit_code == 3 and "status 3" in (failed.reason or "")
    nodes = parse_sinfo("n1|idle|2|1000|debug*\nn1|idle|2|1000|long\nn2|down*|4|n/a|debug*\n")
    assert [(n.name, n.up, n.cpus, n.groups) for n in nodes] == [
        ("n1", True, 2, ["debug", "long"]), ("n2", False, 4, ["debug"])]
