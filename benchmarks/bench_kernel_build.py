"""Issue 19: building the kernel under test, and what ktstr's config buys at boot.

    .venv/bin/python benchmarks/bench_kernel_build.py [--incremental] [--boots 5]
        [--built KEY] [--debian 7.2.13] [--write-docs]

1. ``--incremental``: ``touch kernel/sched/ext/ext.c`` in the source tree of the cached
   ``ktstr kernel build 7.2`` and build again with ``--force`` (same build directory):
   the wall time of the whole command path (identity, config, make, install).
   The cold build is not repeated here (25+ minutes): give the make and wall seconds of
   a first ``ktstr kernel build 7.2`` (its ``build.json`` and ``/usr/bin/time``) with
   ``--cold-make-s`` / ``--cold-wall-s`` to put them in the same table.
2. ``--boots N``: boot to "ready" (the guest init's hello: file systems mounted, results
   port open) under the auto-chosen accelerator, topology 1,1,2,1, the built kernel and
   Debian's kernel of the same version alternating, N each; medians of the guest uptime
   at hello and of the whole VM run (QEMU start to exit), plus image sizes.
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

from ktstr.declare.topology import Topology
from ktstr.image import builder
from ktstr.kernel.build import read_record
from ktstr.kernel.cache import CachedKernel, KernelCache
from ktstr.kernel.resolve import resolve_kernel
from ktstr.run.boot import boot
from ktstr.run.image import init_script
from ktstr.run.params import exec_files
from ktstr.vm.argv import kernel_cmdline
from ktstr.vm.host import AccelRequest, choose_accel, find_qemu, qemu_version

#: the sched_ext core: kernel/sched/ext/ext.c from 7.2 on, kernel/sched/ext.c before
TOUCH_CANDIDATES = ("kernel/sched/ext/ext.c", "kernel/sched/ext.c")


def touch_existing(tree: Path) -> str:
    """Bump the mtime of the sched_ext core file (never creates a file)."""
    for rel in TOUCH_CANDIDATES:
        path = tree / rel
        if path.is_file():
            os.utime(path)
            return rel
    raise SystemExit(f"none of {', '.join(TOUCH_CANDIDATES)} in {tree}")


def newest_build(cache: KernelCache, version: str) -> CachedKernel:
    built = [k for k in cache.entries() if k.key.startswith(f"{version}+build-")]
    if not built:
        sys.exit(f"no built {version} kernel cached: run `ktstr kernel build 7.2` first")
    return max(built, key=lambda k: k.fetched_at)


def ktstr_build(*extra: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "ktstr.cli.__main__", "kernel", "build", "7.2",
                    *extra], check=True, timeout=4 * 3600)
    return time.monotonic() - t0


def boot_once(kernel: CachedKernel, work: Path, topo: Topology) -> tuple[float, float]:
    choice = choose_accel(AccelRequest.AUTO, find_qemu())
    spec = builder.ImageSpec(init=init_script())
    initrd = builder.compose(builder.build_base(spec), builder.run_segment(exec_files("true")),
                             work / "initrd.img")
    out = boot(kernel=kernel.image_path, image=initrd, cmdline=kernel_cmdline(),
               topology=topo, accel=choice, run_dir=work, work_timeout_s=60,
               expect_exec=True, name="bench")
    if out.hello is None:
        raise RuntimeError(f"{kernel.key}: no hello ({out.vm_outcome}: {out.detail})")
    return out.hello.uptime_s, out.total_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incremental", action="store_true")
    ap.add_argument("--boots", type=int, default=0)
    ap.add_argument("--built", help="cache key of the built kernel (default: newest 7.2.13 "
                    "build)")
    ap.add_argument("--debian", default="7.2.13")
    ap.add_argument("--cold-make-s", type=float, default=None)
    ap.add_argument("--cold-wall-s", type=float, default=None)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    cache = KernelCache()
    debian = resolve_kernel(args.debian)
    built = cache.get(args.built) if args.built else newest_build(cache, debian.version)
    assert built is not None
    record = read_record(built)
    assert record is not None, f"{built.key} has no build.json"
    lines = [machine_line() + " The machine is shared with other sessions' builds and VMs "
             "(load average 5-8 on 2 cores while measuring): expect noise."]
    lines += ["", "| build | seconds |", "|---|---|"]
    if args.cold_make_s:
        lines.append(f"| cold `ktstr kernel build 7.2`, make bzImage (-j{record.jobs}, nice) "
                     f"| {args.cold_make_s:.0f} |")
    if args.cold_wall_s:
        lines.append(f"| cold, whole command (configure, make, install; source already "
                     f"extracted) | {args.cold_wall_s:.0f} |")
    if args.incremental:
        touched = touch_existing(record.source.root)
        wall = ktstr_build("--force")
        again = cache.get(built.key)
        assert again is not None
        rec2 = read_record(again)
        assert rec2 is not None
        print(f"incremental: whole command {wall:.1f} s, make {rec2.make_seconds:.1f} s",
              flush=True)
        lines.append(f"| incremental (`touch {touched}`, `--force`), make | "
                     f"{rec2.make_seconds:.0f} |")
        lines.append(f"| incremental, whole command | {wall:.0f} |")
        built = again
    if args.boots:
        topo = Topology(1, 1, 2, 1)
        work = Path(tempfile.mkdtemp(prefix="ktstr-bench-kb-"))
        times: dict[str, list[tuple[float, float]]] = {built.key: [], debian.key: []}
        for i in range(args.boots):
            for k in (built, debian):
                times[k.key].append(boot_once(k, work, topo))
                up, tot = times[k.key][-1]
                print(f"round {i + 1} {k.key}: hello at uptime {up:.2f} s, VM run {tot:.2f} s",
                      flush=True)
        qver = ".".join(map(str, qemu_version(find_qemu())))
        choice = choose_accel(AccelRequest.AUTO, find_qemu())
        lines += ["", f"Boot to ready, {args.boots} boots each, alternating in one run; "
                  f"QEMU {qver}, {choice.describe()}, topology 1,1,2,1, ktstr's init "
                  "(hello = file systems mounted and the results port open); medians "
                  "(min-max).", "",
                  "| kernel | image bytes | uptime at hello s | VM run s |", "|---|---|---|---|"]
        for k in (built, debian):
            ups = [u for u, _ in times[k.key]]
            tots = [t for _, t in times[k.key]]
            lines.append(f"| {k.key} ({k.release}) | {k.image_path.stat().st_size:,} | "
                         f"{statistics.median(ups):.2f} ({min(ups):.2f}-{max(ups):.2f}) | "
                         f"{statistics.median(tots):.2f} ({min(tots):.2f}-{max(tots):.2f}) |")
        mods = debian.modules_dir
        if mods is not None:
            lines.append("")
            lines.append(f"Debian's kernel also brings a module tree of "
                         f"{sum(p.stat().st_size for p in mods.rglob('*') if p.is_file()):,} "
                         "bytes; the built kernel has none (everything it needs is built in).")
    body = "\n".join(lines)
    print(body)
    if args.write_docs:
        replace_section("## Kernel build (`ktstr kernel build`)", body)


if __name__ == "__main__":
    main()
