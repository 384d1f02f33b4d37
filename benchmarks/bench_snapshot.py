"""Issue 15: VMs restored from snapshots against booted ones (docs/performance.md).

    .venv/bin/python benchmarks/bench_snapshot.py [--runs 5] [--kernel 7.2] [--write-docs]

All in one run, interleaved, on this machine's accelerator, with a private snapshot
directory (so the first VM of each key really is the first):

1. ``ktstr shell --topology 1,1,2,1 --exec true`` restored from a snapshot, booted cold
   (``--cold-boot``), and a raw ``qemu-system-x86_64 -kernel -initrd`` whose busybox init
   powers off at once (bench_vm.py's baseline): medians and the median per-triple ratio
   restored/raw (target <= 0.35).
2. VM start to "ready for the plan" when restored (QEMU start to loaded and running), at
   2 and 16 vCPUs (targets <= 0.8 s and <= 1.5 s), with the cost of making each snapshot
   (boot to hello + save) and its size on disk.
3. ``ktstr run --scheduler scx_simple --topology 1,2,2,1 --duration 5`` restored against
   ``--cold-boot``: total wall time (target restored <= 7 s).
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
from bench_vm import RAW_INIT, raw_run

from ktstr.declare.topology import Topology
from ktstr.image import builder
from ktstr.kernel.resolve import resolve_kernel
from ktstr.run.boot import boot
from ktstr.run.image import GuestFiles, guest_image
from ktstr.run.params import exec_plan
from ktstr.vm.argv import accel_args, kernel_cmdline
from ktstr.vm.host import AccelRequest, choose_accel, find_qemu, qemu_version
from ktstr.vm.snapshot import META

KTSTR = [sys.executable, "-m", "ktstr.cli.__main__"]


def timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=900)
    return time.monotonic() - t0


def cold(argv: list[str]) -> list[str]:
    """The same ktstr command with --cold-boot after its verb."""
    n = len(KTSTR) + 1
    return [*argv[:n], "--cold-boot", *argv[n:]]


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default="7.2")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    # the private snapshots are ~120 MB each: gone when the benchmark ends, however
    with tempfile.TemporaryDirectory(prefix="ktstr-bench-snaps-") as snaps, \
            tempfile.TemporaryDirectory(prefix="ktstr-bench-") as work:
        measure(args, Path(snaps), Path(work))


def measure(args: argparse.Namespace, snaps: Path, work: Path) -> None:
    os.environ["KTSTR_SNAPSHOT_DIR"] = str(snaps)
    os.environ.pop("KTSTR_SNAPSHOTS", None)
    kernel = resolve_kernel(args.kernel)
    qemu = find_qemu()
    choice = choose_accel(AccelRequest.AUTO, qemu)

    # 1. shell --exec true: restored, cold, raw QEMU
    shell = [*KTSTR, "shell", "--kernel", args.kernel, "--topology", "1,1,2,1", "--exec",
             "true"]
    first_shell = timed(shell)  # makes the snapshot
    raw_initrd = builder.build_base(builder.ImageSpec(init=RAW_INIT))
    raws, warms, colds, ratios = [], [], [], []
    for i in range(args.runs):
        r = raw_run(qemu, kernel.image_path, raw_initrd, Topology(1, 1, 2, 1),
                    accel_args(choice.accel, choice.tcg_threading))
        w = timed(shell)
        c = timed(cold(shell))
        raws.append(r)
        warms.append(w)
        colds.append(c)
        ratios.append(w / r)
        print(f"shell {i + 1}: raw {r:.2f} s, restored {w:.2f} s, cold {c:.2f} s, "
              f"restored/raw {w / r:.3f}", flush=True)

    # 2. start to ready, by vCPUs; the cost of making the snapshot
    ready_rows = []
    image = guest_image(GuestFiles(), kernel)
    for n in (2, 16):
        topo = Topology(1, max(1, n // 4), min(n, 4), 1)
        loads, made = [], ""
        for j in range(args.runs + 1):
            out = boot(kernel=kernel.image_path, image=image, plan=exec_plan("true"),
                       cmdline=kernel_cmdline(), topology=topo, accel=choice,
                       run_dir=work, work_timeout_s=120, expect_exec=True, name="bench",
                       snapshots=True)
            if j == 0:
                made = out.boot
                continue
            assert out.boot.startswith("restored"), out.boot
            loads.append(out.boot_s or float("nan"))
        metas = [json.loads(m.read_text()) for m in snaps.glob(f"*/{META}")]
        meta = next(m for m in metas if f" {topo.label} " in m["label"])
        ready_rows.append((n, topo.label, med(loads), min(loads), max(loads),
                           meta["boot_s"], meta["save_s"], meta["disk_bytes"] >> 20,
                           meta["state_bytes"] >> 20))
        print(f"{n} vCPUs ({topo.label}): ready after restore median {med(loads):.2f} s; "
              f"first VM: {made}", flush=True)

    # 3. a scheduler run
    run = [*KTSTR, "run", "--kernel", args.kernel, "--scheduler", "scx_simple",
           "--topology", "1,2,2,1", "--duration", "5"]
    timed(run)  # makes this key's snapshot
    run_w, run_c = [], []
    for i in range(args.runs):
        w = timed(run)
        c = timed(cold(run))
        run_w.append(w)
        run_c.append(c)
        print(f"run {i + 1}: restored {w:.2f} s, cold {c:.2f} s", flush=True)

    qver = ".".join(map(str, qemu_version(qemu)))
    body = "\n".join([
        machine_line() + f" Kernel {kernel.release}, QEMU {qver}, accelerator "
        f"{choice.describe()}. `benchmarks/bench_snapshot.py --runs {args.runs}`: "
        "interleaved, private snapshot directory.",
        "",
        "`ktstr shell --topology 1,1,2,1 --exec true` (the whole CLI), against a raw QEMU "
        "boot of the same kernel whose busybox init powers off at once:",
        "",
        "| | median s | min s | max s |",
        "|---|---|---|---|",
        f"| raw QEMU boot | {med(raws):.2f} | {min(raws):.2f} | {max(raws):.2f} |",
        f"| ktstr, restored | {med(warms):.2f} | {min(warms):.2f} | {max(warms):.2f} |",
        f"| ktstr, `--cold-boot` | {med(colds):.2f} | {min(colds):.2f} | {max(colds):.2f} |",
        "",
        f"Median per-pair ratio restored/raw: **{med(ratios):.3f}** (target <= 0.35); "
        f"restored against cold: {med(warms) / med(colds):.3f} of the time. The first "
        f"shell of the key (boot, save, run) took {first_shell:.2f} s.",
        "",
        "VM start to ready for the plan when restored (QEMU start -> state loaded -> "
        "running), and what the snapshot cost to make (boot to hello, save) and weighs:",
        "",
        "| vCPUs | topology | ready median s | min | max | boot to hello s | save s | "
        "on disk MB | apparent MB |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {n} | {lab} | {m:.2f} | {lo:.2f} | {hi:.2f} | {b:.2f} | {sv:.2f} | {d} | {a} |"
          for n, lab, m, lo, hi, b, sv, d, a in ready_rows],
        "",
        "`ktstr run --scheduler scx_simple --topology 1,2,2,1 --duration 5`, total wall "
        "time:",
        "",
        "| | median s | min s | max s |",
        "|---|---|---|---|",
        f"| restored | {med(run_w):.2f} | {min(run_w):.2f} | {max(run_w):.2f} |",
        f"| `--cold-boot` | {med(run_c):.2f} | {min(run_c):.2f} | {max(run_c):.2f} |",
        "",
        f"Restored/cold: {med(run_w) / med(run_c):.3f} (target: restored <= 7 s).",
    ])
    print(body)
    if args.write_docs:
        replace_section("## Snapshots (issue 15)", body)


if __name__ == "__main__":
    main()
