"""Issue 4 benchmarks 1 and 3: harness overhead against raw QEMU, boot time by vCPUs.

    .venv/bin/python benchmarks/bench_vm.py [--runs 5] [--kernel 7.2] [--write-docs]

1. ``ktstr shell --exec true`` (the whole CLI: kernel resolution, image, QEMU, QMP,
   guest protocol, teardown) against a raw ``qemu-system-x86_64 -kernel ... -initrd ...``
   whose busybox init powers off at once: same kernel, accelerator, topology (1,1,2,1)
   and memory; interleaved; the median of the per-pair ratios.
2. Boot time by vCPU count (1, 2, 4, 8, 16) under the auto-chosen accelerator: guest
   uptime when the init says hello, and the whole VM run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _docs import machine_line, replace_section

from ktstr.declare.topology import Topology, vm_memory_mb
from ktstr.image import builder
from ktstr.kernel.resolve import resolve_kernel
from ktstr.run.boot import boot
from ktstr.run.image import image_spec
from ktstr.run.params import exec_plan
from ktstr.vm.argv import accel_args, kernel_cmdline
from ktstr.vm.host import AccelRequest, choose_accel, find_qemu, qemu_version

RAW_INIT = "#!/bin/busybox sh\n/bin/busybox poweroff -f\n"


def raw_run(qemu: str, kernel: Path, initrd: Path, t: Topology, accel: list[str]) -> float:
    argv = [qemu, "-machine", "q35", "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", *accel, "-smp", str(t.total_cpus), "-m", f"{vm_memory_mb(t)}M",
            "-kernel", str(kernel), "-initrd", str(initrd), "-serial", "stdio",
            "-append", " ".join(kernel_cmdline())]
    t0 = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=300)
    return time.monotonic() - t0


def ktstr_run(kernel_spec: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "ktstr.cli.__main__", "shell", "--kernel",
                    kernel_spec, "--topology", "1,1,2,1", "--exec", "true"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=600)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default="7.2")
    ap.add_argument("--vcpus", default="1,2,4,8,16")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    kernel = resolve_kernel(args.kernel)
    qemu = find_qemu()
    choice = choose_accel(AccelRequest.AUTO, qemu)
    t = Topology(1, 1, 2, 1)
    work = Path(tempfile.mkdtemp(prefix="ktstr-bench-"))
    raw_initrd = builder.build_base(builder.ImageSpec(init=RAW_INIT))
    ratios, raws, ours = [], [], []
    for i in range(args.runs):
        r = raw_run(qemu, kernel.image_path, raw_initrd, t,
                    accel_args(choice.accel, choice.tcg_threading))
        k = ktstr_run(args.kernel)
        raws.append(r)
        ours.append(k)
        ratios.append(k / r)
        print(f"pair {i + 1}: raw {r:.2f} s, ktstr {k:.2f} s, ratio {k / r:.3f}", flush=True)
    rows = []
    for n in [int(x) for x in args.vcpus.split(",")]:
        topo = Topology(1, 1, n, 1)
        uptimes, totals = [], []
        for _ in range(max(1, args.runs // 2)):
            initrd = builder.compose(builder.build_base(image_spec()),
                                     builder.run_segment({}), work / "initrd.img")
            out = boot(kernel=kernel.image_path, image=initrd, plan=exec_plan("true"),
                       cmdline=kernel_cmdline(),
                       topology=topo, accel=choice, run_dir=work, work_timeout_s=60,
                       expect_exec=True, name="bench")
            if out.hello is not None:
                uptimes.append(out.hello.uptime_s)
            totals.append(out.total_s)
        rows.append((n, statistics.median(uptimes) if uptimes else float("nan"),
                     statistics.median(totals)))
        print(f"{n} vCPUs: hello at uptime {rows[-1][1]:.2f} s, VM run {rows[-1][2]:.2f} s",
              flush=True)
    qver = ".".join(map(str, qemu_version(qemu)))
    body = "\n".join([
        machine_line() + f" Kernel {kernel.release}, QEMU {qver}, "
        f"accelerator {choice.describe()}. `benchmarks/bench_vm.py --runs {args.runs}`.",
        "",
        "Harness overhead (topology 1,1,2,1, interleaved pairs): raw QEMU booting the same "
        "kernel with a busybox init that powers off, against `ktstr shell --exec true` "
        "(whole CLI: kernel resolution, image, QEMU, QMP, guest protocol, teardown).",
        "",
        "| | median s | min s | max s |",
        "|---|---|---|---|",
        f"| raw QEMU | {statistics.median(raws):.2f} | {min(raws):.2f} | {max(raws):.2f} |",
        f"| ktstr shell --exec true | {statistics.median(ours):.2f} | {min(ours):.2f} | "
        f"{max(ours):.2f} |",
        "",
        f"Median per-pair ratio ktstr/raw: **{statistics.median(ratios):.3f}** (goal <= 1.05). "
        f"The difference is a fixed cost of about "
        f"{statistics.median(ours) - statistics.median(raws):.2f} s per VM, not a rate: "
        "Python start-up and imports (~0.25 s), kernel resolution and the accelerator "
        "choice (~0.1 s), the virtio-serial and QMP set-up, and the guest's hello and "
        "topology report. Against the 15-40 s of a scheduler test it is a few per cent; "
        "against a 4 s boot it is not within the goal.",
        "",
        "Boot time by vCPU count (1 LLC, N cores), median: guest uptime when the init "
        "says hello, and the whole VM run (QEMU start to exit).",
        "",
        "| vCPUs | uptime at hello s | VM run s |",
        "|---|---|---|",
        *[f"| {n} | {u:.2f} | {tot:.2f} |" for n, u, tot in rows],
    ])
    print(body)
    if args.write_docs:
        replace_section("## VM boot and harness overhead", body)


if __name__ == "__main__":
    main()
