"""On demand (``pytest -m kernel_build``): build Debian's linux-source-7.2 with ktstr's
config, run scx_simple and a scenario on it, rebuild as a cache hit, and report a typo'd
fragment option. Uses the real cache, so only the first run compiles (~20-40 minutes on
2 shared cores); later runs reuse the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ktstr import CgroupDef, Topology, run_defs
from ktstr.results.model import RunResult, Verdict
from ktstr.run.request import RunRequest
from ktstr.schedulers.examples import SCX_SIMPLE

pytestmark = [pytest.mark.kernel_build, pytest.mark.vm]

#: bound of one cold build (2 cores, shared); a cache hit takes seconds
BUILD_TIMEOUT_S = 3 * 3600


def ktstr(*args: str, timeout: float = 900,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ktstr.cli.__main__", *args], check=False,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def build_72(*extra: str) -> dict[str, Any]:
    done = ktstr("kernel", "build", "7.2", "--json", *extra, timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return build_72()


def explain(r: RunResult) -> str:
    lines = [r.summary_line(), *(f"{c.name}: {c.passed} {c.detail}" for c in r.checks)]
    return "\n".join([*lines, "--- console ---", r.console_tail[-3000:]])


def test_built_kernel_is_registered_with_sched_ext_and_btf(built: dict[str, Any]) -> None:
    k = built["kernel"]
    assert k["key"].startswith("7.2.13+build-") and k["version"] == "7.2.13"
    assert k["release"] == "7.2.13-ktstr" and k["source"] == "tree"
    assert k["sched_ext"] and k["config_facts"]["options"]["DEBUG_INFO_BTF"] == "y"
    assert built["build"]["dropped"] == []
    assert Path(k["image_path"]).is_file()
    listed = ktstr("kernel", "list", "--json")
    assert k["key"] in {e["key"] for e in json.loads(listed.stdout)["cached"]}


def test_second_build_is_a_cache_hit(built: dict[str, Any]) -> None:
    started = time.monotonic()
    again = build_72()
    assert again["cache_hit"] and again["kernel"]["key"] == built["kernel"]["key"]
    assert again["build"]["built_at"] == built["build"]["built_at"]
    assert time.monotonic() - started < 120


def test_scx_simple_passes_on_the_built_kernel(built: dict[str, Any]) -> None:
    key = built["kernel"]["key"]
    done = ktstr("run", "--kernel", key, "--scheduler", "scx_simple", "--topology", "1,2,2,1",
                 "--duration", "5", "--json")
    r = RunResult.model_validate(json.loads(done.stdout))
    assert done.returncode == 0 and r.verdict is Verdict.PASS, explain(r)
    assert r.sched_ops == "simple"
    assert r.kernel.release == "7.2.13-ktstr" and r.kernel.version == "7.2.13"


def test_scenario_passes_on_the_built_kernel(built: dict[str, Any]) -> None:
    req = RunRequest(scheduler=SCX_SIMPLE, kernel=built["kernel"]["key"],
                     topology=Topology(1, 2, 2, 1), duration_s=4)
    r = run_defs(req, [CgroupDef("cg_0").workers(2), CgroupDef("cg_1").workers(2)])
    assert r.verdict is Verdict.PASS, explain(r)
    assert r.sched_ops == "simple"
    workers = r.stats["scenario"]["workers"]
    assert len(workers) == 4 and all(w["work_units"] > 0 for w in workers)


def test_typo_in_a_fragment_is_reported_before_compiling(tmp_path: Path,
                                                         built: dict[str, Any]) -> None:
    frag = tmp_path / "typo.config"
    frag.write_text("CONFIG_SCHED_CLAS_EXT=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\n")
    started = time.monotonic()
    done = ktstr("kernel", "build", "7.2", "--config", str(frag), "--strict", timeout=900)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "CONFIG_SCHED_CLAS_EXT=y" in done.stderr and "a typo?" in done.stderr
    assert "CONFIG_DEBUG_INFO_BTF_MODULES=y" in done.stderr
    assert "a dependency is off" in done.stderr
    assert "did not survive" in done.stderr
    assert time.monotonic() - started < 600


def test_schedulers_build_against_the_built_kernel(built: dict[str, Any]) -> None:
    key = built["kernel"]["key"]
    done = ktstr("schedulers", "build", "--kernel", key, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"BTF from {key}" in done.stdout and "scx_simple" in done.stdout
    bin_dir = next(line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                   if line.startswith("binaries:"))
    assert bin_dir.endswith(f"by-kernel/{key}/bin")
    run = ktstr("run", "--kernel", key, "--scheduler", "scx_simple", "--topology", "1,2,2,1",
                "--duration", "5", "--json", env={"KTSTR_SCHEDULER": bin_dir})
    r = RunResult.model_validate(json.loads(run.stdout))
    assert run.returncode == 0 and r.verdict is Verdict.PASS, explain(r)
