"""Assemble the guest image for a run: what goes in the cached base, what per run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.declare.payload import Payload
from ktstr.declare.scheduler import INCLUDE_DIR, Scheduler
from ktstr.errors import UserError
from ktstr.image import builder
from ktstr.image.elf import c_runtime, is_elf
from ktstr.image.templates import render
from ktstr.kernel.cache import CachedKernel
from ktstr.run.params import sched_guest_path

RESULTS_PORT = "ktstr.results"


def init_script() -> str:
    return render("init.sh.j2", flavour="ktstr", results_port=RESULTS_PORT)


def find_tool(name: str) -> Path:
    found = shutil.which(name)
    if not found:
        raise UserError(
            f"workload binary {name!r} not found on the host PATH: install it, or run "
            "scripts/setup.sh (installs stress-ng and rt-tests)"
        )
    return Path(found)


#: where the kernel's config goes in every image; the init links it to
#: ``/boot/config-$(uname -r)``, where libbpf looks for ``__kconfig`` values
KERNEL_CONFIG_GUEST = "/boot/ktstr.config"


class GuestFiles:
    """Host files for a guest image: ELF executables (packed with their library closure)
    and plain files (copied as they are), by guest path."""

    def __init__(self) -> None:
        self.binaries: dict[str, Path] = {}
        self.files: dict[str, Path] = {}

    def add(self, guest: str, host: Path, *, executable: bool = True) -> None:
        if executable and is_elf(host):
            self.binaries[guest] = host
        else:
            self.files[guest] = host

    def update(self, other: GuestFiles) -> None:
        self.binaries.update(other.binaries)
        self.files.update(other.files)

    @property
    def expected(self) -> list[str]:
        """Guest paths the init checks before the test starts (``/ktstr/expect_files``)."""
        return sorted([*self.binaries, *self.files])


def kernel_files(kernel: CachedKernel | None) -> GuestFiles:
    """The kernel's own config, so BPF programs that read ``__kconfig`` can load."""
    out = GuestFiles()
    if kernel is not None and kernel.config_path is not None and kernel.config_path.is_file():
        out.add(KERNEL_CONFIG_GUEST, kernel.config_path, executable=False)
    return out


def scheduler_files(scheduler: Scheduler, scheduler_binary: Path | None) -> GuestFiles:
    """Everything the scheduler needs in the guest: its binary at ``/sched/NAME`` and its
    ``config_file`` at ``/include-files/NAME`` (the path ``merged_args`` passes as
    ``--config``). Every path that starts a scheduler (run, test, gauntlet, verifier,
    service cell) takes the scheduler's files from here."""
    out = GuestFiles()
    guest = sched_guest_path(scheduler)
    if scheduler_binary is not None and guest is not None:
        out.add(guest, scheduler_binary)
    if scheduler.config_file:
        cfg = Path(scheduler.config_file).expanduser()
        if not cfg.is_file():
            raise UserError(
                f"scheduler {scheduler.name!r}: config_file {scheduler.config_file!r} does not "
                "exist (paths are relative to the current directory)"
            )
        guest_cfg = scheduler.config_guest_path
        assert guest_cfg is not None
        out.add(guest_cfg, cfg, executable=False)
    return out


def payload_guest_path(payload: Payload) -> str:
    """Where a payload's executable lands in the guest, whatever its host path."""
    exe = payload.executable or payload.name
    return f"/usr/bin/{exe.rsplit('/', 1)[-1]}"


def payload_files(payload: Payload) -> GuestFiles:
    out = GuestFiles()
    exe = payload.executable or payload.name
    host = Path(exe).expanduser() if "/" in exe else find_tool(exe)
    if not host.is_file():
        raise UserError(f"payload {payload.name!r}: executable {exe!r} does not exist")
    out.add(payload_guest_path(payload), host)
    for inc_name in payload.include_files:
        inc_path = Path(inc_name).expanduser()
        if not inc_path.is_file():
            raise UserError(f"payload {payload.name!r}: include file {inc_name!r} does "
                            "not exist")
        out.add(f"{INCLUDE_DIR}/{inc_path.name}", inc_path, executable=False)
    return out


def include_files_of(include_files: Sequence[Path]) -> GuestFiles:
    out = GuestFiles()
    for inc in include_files:
        if not inc.is_file():
            raise UserError(f"include file {str(inc)!r} does not exist")
        if os.access(inc, os.X_OK) and is_elf(inc):
            out.add(f"/usr/bin/{inc.name}", inc)
        elif os.access(inc, os.X_OK):
            out.add(f"/usr/bin/{inc.name}", inc, executable=False)
        else:
            out.add(f"{INCLUDE_DIR}/{inc.name}", inc, executable=False)
    return out


def guest_files(
    *,
    scheduler: Scheduler,
    scheduler_binary: Path | None,
    kernel: CachedKernel | None,
    tools: Sequence[str] = (),
    include_files: Sequence[Path] = (),
    payloads: Sequence[Payload] = (),
    extra_binaries: Mapping[str, Path] | None = None,
) -> GuestFiles:
    """Every host file of a scheduler test's image, from the pieces above."""
    out = GuestFiles()
    out.update(kernel_files(kernel))
    out.update(scheduler_files(scheduler, scheduler_binary))
    for tool in tools:
        out.binaries[f"/usr/bin/{tool}"] = find_tool(tool)
    for payload in payloads:
        out.update(payload_files(payload))
    out.update(include_files_of(include_files))
    if extra_binaries:
        out.binaries.update(extra_binaries)
    return out


def image_spec(files: GuestFiles | None = None) -> builder.ImageSpec:
    """A guest image: the init, the agent (``ktstr-agent``) and ``files``. Every image
    ktstr boots is made here."""
    from ktstr.guest.native import AGENT_GUEST_PATH, agent_binary

    files = files or GuestFiles()
    return builder.ImageSpec(init=init_script(),
                             binaries={AGENT_GUEST_PATH: agent_binary(), **files.binaries},
                             files=dict(files.files))


def base_spec(
    *,
    scheduler: Scheduler,
    scheduler_binary: Path | None,
    kernel: CachedKernel | None = None,
    tools: Sequence[str] = (),
    include_files: Sequence[Path] = (),
    payload: Payload | None = None,
    extra_binaries: Mapping[str, Path] | None = None,
) -> builder.ImageSpec:
    """The cacheable part: busybox, init, the kernel config, the scheduler binary and its
    config file, workload tools, the payload, includes (``guest_files``).

    ELF executables come with their shared-library closure; scripts and data files are
    copied as they are. Included executables land in ``/usr/bin``, other files in
    ``/include-files``. ``extra_binaries`` (guest path -> host file) are added as they
    are (e.g. the scenario worker, a static binary).
    """
    return image_spec(guest_files(
        scheduler=scheduler, scheduler_binary=scheduler_binary, kernel=kernel, tools=tools,
        include_files=include_files, payloads=[payload] if payload else [],
        extra_binaries=extra_binaries))


class GuestImage(Frozen):
    """A guest's initramfs in parts.

    ``base`` depends on the kernel and the host only (the init, ``ktstr-agent``,
    busybox, the kernel's config, the host's C runtime): it is what a VM snapshot
    holds. ``overlay`` holds the run's files with their
    library closure (cached by content) and ``segment`` the files generated per run. A
    restored VM (``ktstr.vm.snapshot``) receives the overlay and the segment through the
    agent; a cold boot without snapshots loads all three as one initrd."""

    base: Path
    overlay: Path | None = None
    segment: bytes = b""

    def archives(self) -> list[Path | bytes]:
        """What goes to the guest after the base, in order (each a whole cpio)."""
        out: list[Path | bytes] = []
        if self.overlay is not None:
            out.append(self.overlay)
        if self.segment:
            out.append(self.segment)
        return out

    def initrd(self, run_dir: Path) -> Path:
        """All parts as one initrd in ``run_dir`` (the base alone needs no copy)."""
        if self.overlay is None and not self.segment:
            return self.base
        overlays = (self.overlay,) if self.overlay is not None else ()
        return builder.compose(self.base, self.segment, run_dir / "initrd.img", overlays)


def guest_image(files: GuestFiles, kernel: CachedKernel | None,
                segment_files: Mapping[str, bytes] | None = None) -> GuestImage:
    """The image of a run: ``files`` beyond the kernel's own go in the overlay.

    The host's C runtime (``elf.c_runtime``: the loader and libc, ~2 MB that nearly every
    scheduler and payload loads) is in the base, so a restored VM already has it and
    the overlay leaves it out: the overlay is what crosses the guest channel after every
    restore, at about 10 MB/s under TCG."""
    runtime = c_runtime()
    in_base = kernel_files(kernel)
    for guest, host in runtime.items():
        in_base.add(guest, host, executable=False)
    base = builder.build_base(image_spec(in_base))
    rest = GuestFiles()
    rest.binaries = {g: h for g, h in files.binaries.items() if g not in in_base.binaries}
    rest.files = {g: h for g, h in files.files.items() if g not in in_base.files}
    overlay = None
    if rest.binaries or rest.files:
        overlay = builder.build_base(builder.ImageSpec(
            init=None, busybox=None, applets=False, binaries=rest.binaries, files=rest.files,
            provided=runtime))
    segment = builder.run_segment(dict(segment_files)) if segment_files else b""
    return GuestImage(base=base, overlay=overlay, segment=segment)
