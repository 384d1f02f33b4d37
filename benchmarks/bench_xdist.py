"""Issue 7 acceptance: speedup of ``pytest -n 2`` over ``-n 0`` for 1-vCPU ktstr tests.

    .venv/bin/python benchmarks/bench_xdist.py [--tests 6] [--rounds 2] [--write-docs]

Writes a test module of N ``@ktstr_test`` tests (EEVDF, topology 1,1,1,1, the default
workload for 3 s), runs it with ``-n 0`` and ``-n 2`` alternately, and reports the wall
times and the speedup. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _docs import machine_line, replace_section

ROOT = Path(__file__).resolve().parents[1]
HEADER = "from ktstr import ktstr_test\n"
TEST = '''
@ktstr_test(numa_nodes=1, llcs=1, cores=1, threads=1, duration_s=3)
def test_one_vcpu_{i}(ctx):
    assert ctx.run().passed
'''


def run(path: Path, jobs: int, kernel: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-n", str(jobs), "--ktstr-kernel", kernel,
                    f"--ktstr-results={path.parent / 'results'}", str(path)],
                   cwd=path.parent, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=3600)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kernel", default="7.2")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ktstr-xdist-"))
    path = work / "test_xdist_bench.py"
    path.write_text(HEADER + "".join(TEST.replace("{i}", str(i)) for i in range(args.tests)))
    serial, parallel = [], []
    for r in range(args.rounds):
        serial.append(run(path, 0, args.kernel))
        parallel.append(run(path, 2, args.kernel))
        print(f"round {r + 1}: -n 0 {serial[-1]:.1f} s, -n 2 {parallel[-1]:.1f} s", flush=True)
    s, p = statistics.median(serial), statistics.median(parallel)
    body = "\n".join([
        machine_line() + f" `benchmarks/bench_xdist.py --tests {args.tests} "
        f"--rounds {args.rounds}`: {args.tests} tests of one VM each (EEVDF, 1 vCPU, "
        "3 s default workload) under TCG, `-n 0` and `-n 2` alternately.",
        "",
        "| run | median wall s | all runs s |",
        "|---|---|---|",
        f"| -n 0 | {s:.1f} | {', '.join(f'{x:.1f}' for x in serial)} |",
        f"| -n 2 | {p:.1f} | {', '.join(f'{x:.1f}' for x in parallel)} |",
        "",
        f"Speedup: **{s / p:.2f}x** (goal >= 1.8x).",
    ])
    print(body)
    if args.write_docs:
        replace_section("## pytest-xdist speedup", body)


if __name__ == "__main__":
    main()
