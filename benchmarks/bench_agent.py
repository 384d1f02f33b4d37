"""Issue 14: the guest side before (busybox shell init) and after (ktstr-agent).

    .venv/bin/python benchmarks/bench_agent.py --before /path/to/old/checkout [--runs 5]
        [--kernel 7.2] [--write-docs]

Each run is ``scx_simple`` for 5 s on topology 1,2,2,1 (``run_scheduler``), run by the
checkout's own code in a subprocess (``PYTHONPATH=CHECKOUT``), before and after
interleaved. Measured in the guest:

- *ready*: guest uptime when the guest side says hello (kernel hand-off to "ready for
  the plan"; the shell init says hello once it has found its port);
- *to attached*: from hello to the ``sched_attached`` event (the plan, the topology
  report, the setup, the scheduler's start and the attach proof);
- *forks*: processes created in the guest (``/proc/stat processes``) from hello to the
  end of the run, and in all since boot (kernel threads included). Both inits are given
  the same two console lines (fork-free shell builtins) that print the counter after the
  port is found and before power-off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _docs import machine_line, replace_section

HERE = Path(__file__).resolve().parent

PROBE = r'''
import json, re, sys
from ktstr import Topology
import ktstr.run.image as image
import ktstr.run.execute as execute
from ktstr.run.request import RunRequest
from ktstr.schedulers.examples import SCX_SIMPLE

COUNT = ('while read -r k v; do [ "$k" = processes ] && '
         'echo "KTSTR_PROCESSES $v" > /dev/console; done < /proc/stat\n')
_orig = image.init_script

def init_script():
    text = _orig()
    # after the port is found (the shell's first use of fd 3 / the agent's start) and
    # before power-off
    anchor = 'exec 3>"$port"\n' if 'exec 3>"$port"\n' in text else "/usr/bin/ktstr-agent"
    i = text.index(anchor)
    text = text[:i] + COUNT + text[i:]
    j = text.rindex("exec poweroff")
    return text[:j] + COUNT + text[j:]

image.init_script = init_script
captured = {}
_boot = execute.boot_retrying if hasattr(execute, "boot_retrying") else execute.boot

def grab(**kw):
    out = _boot(**kw)
    captured["out"] = out
    return out

if hasattr(execute, "boot_retrying"):
    execute.boot_retrying = grab
else:
    execute.boot = grab
req = RunRequest(scheduler=SCX_SIMPLE, kernel=sys.argv[1], topology=Topology(1, 2, 2, 1),
                 duration_s=5, keep=True)
r = execute.run_scheduler(req)
out = captured["out"]
console = open(r.run_dir + "/console.log").read() if r.run_dir else out.console_tail
counts = [int(x) for x in re.findall(r"KTSTR_PROCESSES (\d+)", console)]
attached = [e.t for e in r.timeline if e.name == "sched_attached"]
print(json.dumps({
    "verdict": r.verdict.value,
    "ready": out.hello.uptime_s if out.hello else None,
    "to_attached": (attached[0] - out.hello.uptime_s) if attached and out.hello else None,
    "forks_run": counts[1] - counts[0] if len(counts) >= 2 else None,
    "forks_total": counts[-1] if counts else None,
}))
'''


def one(checkout: Path, kernel: str) -> dict[str, float | None]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PROBE)
    try:
        done = subprocess.run([sys.executable, f.name, kernel], cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=900, check=False)
    finally:
        os.unlink(f.name)
    last = done.stdout.strip().splitlines()[-1:] or ["{}"]
    try:
        data: dict[str, float | None] = json.loads(last[0])
    except json.JSONDecodeError:
        raise SystemExit(f"probe failed in {checkout}:\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-3000:]}") from None
    return data


def med(rows: list[dict[str, float | None]], key: str) -> float:
    vals = [float(v) for r in rows if (v := r.get(key)) is not None]
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="checkout with the shell init")
    ap.add_argument("--after", type=Path, default=HERE.parent, help="checkout with the agent")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default="7.2")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    sides: dict[str, list[dict[str, float | None]]] = {"before": [], "after": []}
    for i in range(args.runs):
        for name, path in (("before", args.before), ("after", args.after)):
            row = one(path.resolve(), args.kernel)
            sides[name].append(row)
            print(f"run {i + 1} {name}: {row}", flush=True)
    keys = [("ready", "guest uptime at hello (s)", "{:.2f}"),
            ("to_attached", "hello to attached (s)", "{:.2f}"),
            ("forks_run", "forks, hello to end", "{:.0f}"),
            ("forks_total", "forks since boot", "{:.0f}")]
    lines = ["| measure | shell init (before) | ktstr-agent (after) | after/before |",
             "|---|---:|---:|---:|"]
    for key, label, fmt in keys:
        b, a = med(sides["before"], key), med(sides["after"], key)
        lines.append(f"| {label} | {fmt.format(b)} | {fmt.format(a)} | {a / b:.2f} |")
    verdicts = {n: [r.get("verdict") for r in rows] for n, rows in sides.items()}
    body = "\n".join([
        machine_line() + f" `benchmarks/bench_agent.py --runs {args.runs} --kernel "
        f"{args.kernel}`: scx_simple, 5 s, topology 1,2,2,1, TCG; before and after "
        "interleaved, medians.", "", *lines, "",
        f"Verdicts: before {verdicts['before']}, after {verdicts['after']}.",
    ])
    print(body)
    if args.write_docs:
        replace_section("## Guest agent (issue 14)", body)


if __name__ == "__main__":
    main()
