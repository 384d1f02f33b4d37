"""Benchmark 2 of issue 4: initramfs build, cold and warm, and the cost of composing.

    .venv/bin/python benchmarks/bench_initramfs.py [--runs 7] [--case NAME=BIN[,BIN...]]...
        [--boot KERNEL_DIR [--boot-runs 3]] [--write-docs]

Per case (busybox + the case's binaries with their library closure + an include file)
and per compression: the median over ``--runs`` of a cold ``build_base`` (empty image
cache, in-process ELF caches cleared; the host's page cache stays warm), a warm
``build_base``, ``run_segment`` and ``compose``; then ``compose``'s copy methods side by
side. With ``--boot``, boots the kernel in KERNEL_DIR (``vmlinuz`` + ``modules``) under
TCG with each compression, interleaved, and reports the median time until the init
prints its uptime. ``--write-docs`` replaces the "## Initramfs build" section of
docs/performance.md (other sections are left alone). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _docs import DOCS, replace_section

from ktstr.image import elf
from ktstr.image.builder import Compression, ImageSpec, build_base, compose, run_segment

HEADING = "## Initramfs build"
INIT = "#!/bin/busybox sh\necho KTSTR-BENCH uptime=$(cut -d' ' -f1 /proc/uptime)\npoweroff -f\n"
SEGMENT: dict[str, bytes | Path] = {
    "/ktstr/params.sh": b"KTSTR_MODE=exec\n",
    "/ktstr/cmd.sh": b"true\n",
}
BOOT_INIT = (
    "#!/bin/busybox sh\nmount -t proc proc /proc\n"
    "echo KTSTR-BENCH uptime=$(cut -d' ' -f1 /proc/uptime)\npoweroff -f\n"
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds >= 0.01 else f"{seconds * 1000:.2f}"


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _spec(binaries: list[Path], include: Path, compression: Compression, init: str) -> ImageSpec:
    return ImageSpec(
        init=init,
        binaries={f"/usr/bin/{b.name}": b for b in binaries},
        files={"/include-files/data": include},
        compression=compression,
    )


def _clear_process_caches() -> None:
    elf._facts_cached.cache_clear()
    elf._ld_cache_cached.cache_clear()


def bench_case(name: str, binaries: list[Path], runs: int, work: Path) -> list[str]:
    include = work / "include.dat"
    include.write_bytes(os.urandom(64 * 1024))
    rows = []
    for compression in Compression:
        spec = _spec(binaries, include, compression, INIT)
        cold_times = []
        for i in range(runs):
            os.environ["KTSTR_CACHE_DIR"] = str(work / f"cold-{name}-{compression}-{i}")
            _clear_process_caches()
            start = time.perf_counter()
            image = build_base(spec)
            cold_times.append(time.perf_counter() - start)
        warm = _median(functools.partial(build_base, spec), runs * 5)
        seg = _median(functools.partial(run_segment, SEGMENT), runs * 5)
        compose_one = functools.partial(compose, image, run_segment(SEGMENT), work / "initrd")
        comp = _median(compose_one, runs)
        rows.append(
            f"| {name} | {compression.value} | {image.stat().st_size / 1e6:.1f} | "
            f"{_ms(statistics.median(cold_times))} | {_ms(warm)} | {_ms(seg)} | {_ms(comp)} |"
        )
        for path in work.glob(f"cold-{name}-{compression}-*"):
            shutil.rmtree(path)
    return rows


def bench_copy(image: Path, runs: int, work: Path) -> list[str]:
    out = work / "copy-target"
    size = image.stat().st_size

    def copy_file_range() -> None:
        with open(image, "rb") as src, open(out, "wb") as dst:
            done = 0
            while done < size:
                done += os.copy_file_range(src.fileno(), dst.fileno(), size - done)

    def read_write() -> None:
        out.write_bytes(image.read_bytes())

    methods = {
        "os.copy_file_range": copy_file_range,
        "shutil.copyfile (sendfile)": lambda: shutil.copyfile(image, out),
        "read + write": read_write,
    }
    return [f"| {label} | {_ms(_median(fn, runs))} |" for label, fn in methods.items()]


def bench_boot(kernel: Path, binaries: list[Path], runs: int, work: Path) -> list[str]:
    include = work / "include.dat"
    os.environ["KTSTR_CACHE_DIR"] = str(work / "boot-cache")
    initrds = {}
    for compression in Compression:
        image = build_base(_spec(binaries, include, compression, BOOT_INIT))
        initrds[compression] = compose(image, run_segment({}), work / f"initrd-{compression}")
    uptimes: dict[Compression, list[float]] = {c: [] for c in Compression}
    walls: dict[Compression, list[float]] = {c: [] for c in Compression}
    for _ in range(runs):
        for compression, initrd in initrds.items():
            argv = [
                "timeout", "120", "qemu-system-x86_64", "-M", "pc", "-accel", "tcg",
                "-cpu", "max,vendor=GenuineIntel", "-m", "1024", "-smp", "1",
                "-kernel", str(kernel / "vmlinuz"), "-initrd", str(initrd),
                "-append", "console=ttyS0 panic=-1 quiet", "-nographic", "-no-reboot",
                "-nodefaults", "-serial", "stdio",
            ]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            walls[compression].append(time.perf_counter() - start)
            found = re.search(r"KTSTR-BENCH uptime=([0-9.]+)", done.stdout)
            if found is None:
                raise SystemExit(f"boot with {compression} failed:\n{done.stdout[-2000:]}")
            uptimes[compression].append(float(found.group(1)))
    return [
        f"| {c.value} | {initrds[c].stat().st_size / 1e6:.1f} | "
        f"{statistics.median(uptimes[c]):.2f} | {statistics.median(walls[c]):.2f} |"
        for c in Compression
    ]


def machine_facts() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = (
        subprocess.run(
            ["df", "-T", tempfile.gettempdir()], capture_output=True, text=True, check=False
        )
        .stdout.splitlines()[-1]
        .split()[1]
    )
    return (
        f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}, Python {platform.python_version()}, cache on {fs}"
    )


def write_docs(section: str) -> None:
    """Replace this benchmark's section of docs/performance.md (``_docs``)."""
    replace_section(HEADING, section.partition("\n")[2])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--case", action="append", default=[], help="NAME=BIN[,BIN...]")
    parser.add_argument("--boot", type=Path, help="kernel dir with vmlinuz (boot under TCG)")
    parser.add_argument("--boot-runs", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    cases = {"stress-ng": [Path("/usr/bin/stress-ng")]}
    for case in args.case:
        name, _, bins = case.partition("=")
        cases[name] = [Path(b) for b in bins.split(",")]
    with tempfile.TemporaryDirectory(prefix="ktstr-bench-") as tmp:
        work = Path(tmp)
        rows = []
        for name, binaries in cases.items():
            rows += bench_case(name, binaries, args.runs, work)
        os.environ["KTSTR_CACHE_DIR"] = str(work / "copy-cache")
        include = work / "include.dat"
        image = build_base(_spec(cases["stress-ng"], include, Compression.NONE, INIT))
        copies = bench_copy(image, args.runs * 3, work)
        image_mb = image.stat().st_size / 1e6
        boots = bench_boot(args.boot, cases["stress-ng"], args.boot_runs, work) if args.boot else []
    command = "benchmarks/bench_initramfs.py " + " ".join(argv)
    lines = [
        HEADING,
        "",
        f"Measured {machine_facts()}; `{command.strip()}`.",
        f"Medians: cold over {args.runs} runs (empty image cache, process caches cleared, "
        "host page cache warm), warm/segment over 5x as many. Image = busybox (applet "
        "links) + the binaries + their library closure + a 64 KiB include file.",
        "",
        "| case | compression | image MB | cold ms | warm ms | run_segment ms | compose ms |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Copying the {image_mb:.1f} MB uncompressed base (what `compose` "
        "does first; QEMU's x86 `-initrd` takes one file, so base and segment must be "
        "concatenated):",
        "",
        "| method | ms |",
        "|---|---|",
        *copies,
    ]
    if boots:
        lines += [
            "",
            f"Boot under TCG (1 vCPU, 1 GiB, {args.boot.name}), stress-ng image, "
            f"interleaved, median of {args.boot_runs}: guest uptime when /init runs, "
            "and the whole QEMU run.",
            "",
            "| compression | initrd MB | uptime at init s | QEMU run s |",
            "|---|---|---|---|",
            *boots,
        ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"updated {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
