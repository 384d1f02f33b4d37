"""Issue 8 acceptance: the verifier sweep on real kernels (7.2, 7.3) under QEMU.

Four short VMs in all (about 20-25 s each under TCG on 2 cores): scx_simple on both
kernels, then the 7.2-built scx_qmap on both kernels, whose 7.3 cell must fail with the
kernel's own reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

QMAP_REASON = "Cannot find member cgroup_init in kernel BTF"


def ktstr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ktstr.cli.__main__", *args], check=False,
                          capture_output=True, text=True, timeout=900)


def test_scx_simple_on_7_2_and_7_3_table_json_and_diff(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    done = ktstr("verifier", "--kernel", "7.2", "--kernel", "7.3", "--scheduler", "scx_simple",
                 "--preset", "tiny-1llc", "--json", str(out), "--out", str(tmp_path / "dir"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("scx_simple: verified instructions per program")
    # rows = kernels, columns = programs (the 7.3 tree adds scx_lib_init_probe: "-" on 7.2)
    header = lines[1].split()
    assert header[0] == "kernel" and "simple_enqueue" in header
    for version, line in zip(("7.2.", "7.3."), lines[3:5], strict=True):
        values = line.split()
        assert values[0].startswith(version)
        assert all(v == "-" or int(v) > 0 for v in values[1:]), line
        assert values[header.index("simple_enqueue")].isdigit()
    assert "2 cells: 2 PASS" in done.stdout
    assert "ETA" in done.stderr

    doc = json.loads(out.read_text())
    for c in doc["cells"]:
        d = c["detail"]
        assert d["attached"] and d["ops"] == "simple"
        enq = next(p for p in d["programs"] if p["name"] == "simple_enqueue")
        assert enq["verdict"] == "success" and enq["insns"] > 0 and enq["states"] > 0
        assert enq["loaded_insns"] > 0 and enq["duration_us"] > 0
        assert enq["stack_depth"] is not None
    # one JSON per kernel, then diff them
    per_kernel = []
    for c in doc["cells"]:
        path = tmp_path / f"{c['detail']['kernel']}.json"
        path.write_text(json.dumps({**doc, "cells": [c]}))
        per_kernel.append(path)
    diff = ktstr("verifier", "diff", *map(str, per_kernel), "--exit-zero")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "scx_simple/tiny-1llc/simple_enqueue" in diff.stdout
    assert "programs compared" in diff.stdout


def test_qmap_built_from_7_2_passes_on_7_2_and_fails_on_7_3(tmp_path: Path) -> None:
    out = tmp_path / "qmap.json"
    done = ktstr("verifier", "--kernel", "7.2", "--kernel", "7.3", "--scheduler", "scx_qmap",
                 "--build-series", "7.2", "--topology", "1,1,2,1", "--json", str(out),
                 "--out", str(tmp_path / "dir"))
    assert done.returncode == 1, done.stdout + done.stderr
    cells = {c["detail"]["kernel"][:3]: c for c in json.loads(out.read_text())["cells"]}
    assert cells["7.2"]["outcome"] == "pass", cells["7.2"]["reasons"]
    assert cells["7.3"]["outcome"] == "fail"
    d73 = cells["7.3"]["detail"]
    assert d73["build_series"] == "7.2" and not d73["attached"]
    assert QMAP_REASON in d73["failure_reason"]
    assert Path(d73["log_dir"], "verifier.log").read_text().count(QMAP_REASON) >= 1
    assert "--build-series 7.2" in d73["reproducer"]
    grid = done.stdout[done.stdout.index("pass grid"):].splitlines()
    assert grid[3].split()[1:] == ["PASS"] and grid[4].split()[1:] == ["FAIL"]
    assert QMAP_REASON in done.stdout
