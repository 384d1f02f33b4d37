"""Dispatch pieces without a backend: sutclasses.yaml types and dispatch modes, the
runcell result line, and how a provider's final status becomes a job report."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr.contract import JobResult, parse_result, result_line
from ktstr.results.model import Verdict
from ktstr.service.dispatch import result_of
from ktstr.service.providers.base import ProviderState, ProviderStatus
from ktstr.service.sutclasses import (
    Dispatch,
    SlurmClass,
    SutClass,
    SutClassesError,
    parse_sutclasses,
)

YAML = """\
- sutclass: lab
  type: static
  params:
    dispatch: ssh
    suts:
      - name: b-01
        connection: {method: SSH, params: {host: b-01}}
- sutclass: cluster
  type: slurm
  params: {partition: debug, account: k, sbatch_args: [--exclusive], max_jobs: 3}
- sutclass: pulled
  type: static
  params:
    suts: [{name: p-01, connection: {method: SSH, params: {host: p-01}}}]
"""


def test_types_and_dispatch_modes() -> None:
    lab, cluster, pulled = parse_sutclasses(YAML, Path("s.yaml"))
    assert isinstance(lab, SutClass) and lab.dispatch is Dispatch.SSH
    assert isinstance(cluster, SlurmClass) and cluster.dispatch is Dispatch.SLURM
    assert cluster.sut_names == ["cluster.1", "cluster.2", "cluster.3"]
    assert cluster.params.sbatch_args == ["--exclusive"]
    assert pulled.dispatch is Dispatch.PULL  # the default keeps pull workers working


@pytest.mark.parametrize(("text", "expected"), [
    (YAML.replace("type: slurm", "type: lsf"),
     "s.yaml: entry 1 (cluster): type: must be one of slurm, static, not 'lsf'"),
    (YAML.replace("method: SSH, params: {host: b-01}", "method: serial"),
     "SUT 'b-01': dispatch: ssh needs connection.method SSH, not 'serial'"),
    (YAML.replace("max_jobs: 3", "max_jobs: 0"), "s.yaml: entry 1 (cluster): params.max_jobs"),
    (YAML.replace("dispatch: ssh", "dispatch: slurm"), "s.yaml: entry 0 (lab): params.dispatch"),
])
def test_errors_name_the_entry(text: str, expected: str) -> None:
    with pytest.raises(SutClassesError) as err:
        parse_sutclasses(text, Path("s.yaml"))
    assert any(line.startswith("s.yaml: entry") and expected in line
               for line in str(err.value).splitlines()), str(err.value)


def test_result_line_round_trips() -> None:
    res = JobResult(outcome=Verdict.FAIL, reasons=["starved"], duration_s=2.0, log="x")
    text = f"ktstr-runcell pid 7\nlog\n{result_line(res)}\n"
    assert parse_result(text) == res.model_copy(update={"log": ""})
    assert parse_result("no result here\n") is None


def test_result_of_final_states() -> None:
    ok = f"log\n{result_line(JobResult(outcome=Verdict.PASS, duration_s=1.0))}\n"
    rep = result_of(ProviderStatus(state=ProviderState.COMPLETED, exit_code=0), ok, "w", 1, 9)
    assert rep.outcome is Verdict.PASS and not rep.failed and rep.duration_s == 1.0
    bare = result_of(ProviderStatus(state=ProviderState.COMPLETED, exit_code=0), "", "w", 1, 3)
    assert bare.failed and bare.reasons == [
        "the remote command exited 0 without a ktstr-result line"]
    why = "the Slurm job was cancelled outside ktstr (scancel)"
    gone = result_of(ProviderStatus(state=ProviderState.FAILED, reason=why), ok, "w", 1, 3)
    assert gone.failed and gone.outcome is None and gone.reasons == [why]
