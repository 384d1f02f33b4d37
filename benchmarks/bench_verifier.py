"""Issue 15's verifier-sweep target: the 30 cells of the example schedulers on two kernels
and two presets, one cell at a time (``-j 1``, how cells ran while each held its vCPUs'
worth of host CPUs) against the default (a restored cell costs one host CPU), rounds
interleaved, snapshots warm (a first unmeasured run makes any that are missing).

    .venv/bin/python benchmarks/bench_verifier.py [--rounds 1] [--write-docs]

Not part of the test suite. Takes ~8 minutes a round on a 2-core host under TCG.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _docs import machine_line, replace_section

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["verifier", "--kernel", "7.2", "--kernel", "7.3", "--preset", "tiny-1llc",
        "--preset", "smt-2llc"]


def sweep(extra: list[str], work: Path, name: str) -> tuple[float, dict[str, int], float]:
    """Wall seconds, outcomes by count, and the load average when it ended."""
    out = work / name
    summary = work / f"{name}.json"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "ktstr.cli", *ARGS, *extra, "--out", str(out),
                    "--json", str(summary), "--exit-zero"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.monotonic() - t0
    counts: dict[str, int] = {}
    for cell in json.loads(summary.read_text())["cells"]:
        counts[cell["outcome"]] = counts.get(cell["outcome"], 0) + 1
    return wall, counts, os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ktstr-bench-verifier-"))
    sweep([], work, "warmup")  # every VM key has its snapshot before anything is timed
    runs: dict[str, list[tuple[float, dict[str, int], float]]] = {"-j 1": [], "default": []}
    for r in range(args.rounds):
        for label, extra in (("-j 1", ["-j", "1"]), ("default", [])):
            runs[label].append(sweep(extra, work, f"{label.replace(' ', '')}-{r}"))
            wall, counts, load = runs[label][-1]
            print(f"round {r + 1} {label}: {wall:.1f} s {counts} load {load:.1f}", flush=True)
    one, par = (statistics.median(w for w, _, _ in runs[k]) for k in ("-j 1", "default"))
    rows = [f"| {k} | {statistics.median(w for w, _, _ in v):.1f} | "
            f"{', '.join(f'{w:.1f}' for w, _, _ in v)} | "
            f"{', '.join(f'{ld:.1f}' for _, _, ld in v)} | "
            f"{'; '.join(str(c) for _, c, _ in v)} |" for k, v in runs.items()]
    body = "\n".join([
        machine_line() + f" `benchmarks/bench_verifier.py --rounds {args.rounds}`: "
        "`ktstr " + " ".join(ARGS) + "` over the 8 example schedulers (30 cells), "
        "snapshots warm, `-j 1` and the default alternately.",
        "",
        "| run | median wall s | all runs s | load average at the end | outcomes |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Default against one cell at a time: **{par / one:.2f}x** the time; "
        f"target: the default run <= 240 s ({'met' if par <= 240 else 'not met'}).",
    ])
    print(body)
    if args.write_docs:
        replace_section("## Verifier sweep (issue 15)", body)


if __name__ == "__main__":
    main()
