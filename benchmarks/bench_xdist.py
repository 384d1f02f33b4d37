"""Issue 7 acceptance: speedup of ``pytest -n 2`` over ``-n 0`` for 1-vCPU ktstr tests.

    .venv/bin/python benchmarks/bench_xdist.py [--tests 6] [--rounds 2] [--write-docs]

Writes a test module of N ``@ktstr_test`` tests (EEVDF, topology 1,1,1,1, the default
workload for 3 s), runs it with ``-n 0`` and ``-n 2`` alternately, and reports the wall
times and the speedup. Not part of the test suite.

Each round runs both ways under two plugin sets, interleaved: ``dev`` (whatever pytest
plugins this venv autoloads: the dev extras bring hypothesis, whose plugin alone takes
~1.2 s to import in every pytest process, controller and workers alike) and ``ktstr``
(what a scheduler project's test run loads: pytest-xdist and ktstr's plugin only,
``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 -p xdist.plugin -p ktstr.pytest_plugin``).
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


#: plugin set -> (extra pytest arguments, extra environment)
PLUGINS: dict[str, tuple[list[str], dict[str, str]]] = {
    "dev": ([], {}),
    "ktstr": (["-p", "xdist.plugin", "-p", "ktstr.pytest_plugin"],
              {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}),
}


def run(path: Path, jobs: int, kernel: str, plugins: str = "dev") -> float:
    extra_args, extra_env = PLUGINS[plugins]
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    *extra_args, "-n", str(jobs), "--ktstr-kernel", kernel,
                    f"--ktstr-results={path.parent / 'results'}", str(path)],
                   cwd=path.parent, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT), **extra_env}, timeout=3600)
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
    walls: dict[tuple[str, int], list[float]] = {(k, j): [] for k in PLUGINS for j in (0, 2)}
    for r in range(args.rounds):
        for plugins in PLUGINS:
            for jobs in (0, 2):
                walls[plugins, jobs].append(run(path, jobs, args.kernel, plugins))
        print(f"round {r + 1}: " + ", ".join(
            f"{k} -n {j} {v[-1]:.1f} s" for (k, j), v in walls.items()), flush=True)
    rows, speedups = [], []
    for plugins in PLUGINS:
        s = statistics.median(walls[plugins, 0])
        p = statistics.median(walls[plugins, 2])
        speedups.append(f"{plugins} **{s / p:.2f}x**")
        for jobs in (0, 2):
            xs = walls[plugins, jobs]
            rows.append(f"| {plugins} | -n {jobs} | {statistics.median(xs):.1f} | "
                        f"{', '.join(f'{x:.1f}' for x in xs)} |")
    body = "\n".join([
        machine_line() + f" `benchmarks/bench_xdist.py --tests {args.tests} "
        f"--rounds {args.rounds}`: {args.tests} tests of one VM each (EEVDF, 1 vCPU, "
        "3 s default workload) under TCG, `-n 0` and `-n 2` alternately, with this "
        "venv's plugins (dev) and with pytest-xdist and ktstr's alone (ktstr).",
        "",
        "| plugins | run | median wall s | all runs s |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Speedup (median -n 0 / median -n 2): {', '.join(speedups)} (goal >= 1.8x).",
    ])
    print(body)
    if args.write_docs:
        replace_section("## pytest-xdist speedup", body)


if __name__ == "__main__":
    main()
