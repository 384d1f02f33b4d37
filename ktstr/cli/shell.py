"""``ktstr shell``: a busybox shell in a VM, or one command and its exit status."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ktstr.cli.app import App, pass_app
from ktstr.cli.options import (
    accel_option,
    cold_boot_option,
    kernel_option,
    resolve_topology,
    topology_options,
)
from ktstr.declare.topology import DEFAULT_TOPOLOGY, Topology
from ktstr.vm.host import AccelChoice

#: how long an --exec command may take, before TCG scaling (see ktstr.vm.host)
EXEC_TIMEOUT_S = 300.0


@click.command("shell")
@kernel_option
@topology_options
@click.option("--memory-mb", type=int, default=None, help="Guest memory in MiB.")
@accel_option
@cold_boot_option
@click.option("-i", "--include", "includes", multiple=True, type=click.Path(
    exists=True, dir_okay=False, path_type=Path),
    help="Put FILE in the guest: executables (with their libraries) in /usr/bin, other "
    "files in /include-files (repeatable).")
@click.option("-e", "--exec", "command", default=None, metavar="CMD",
              help="Run CMD with sh -c in the guest, print its stdout and stderr "
              "separately, and exit with its status.")
@click.option("--keep", is_flag=True, help="Keep the run directory (console log, argv, "
              "image) and print its path.")
@pass_app
def shell(
    app: App, kernel: str | None, topology: str | None, preset_name: str | None,
    memory_mb: int | None, accel: str, includes: tuple[Path, ...], command: str | None,
    keep: bool,
) -> None:
    """Boot a kernel with an exact topology and open a shell (or run --exec CMD).

    \b
    Examples:
      ktstr shell --kernel 7.2 --topology 2,4,2,1 \\
          --exec 'cat /sys/devices/system/node/node1/cpulist'
      ktstr shell --kernel 7.2 --preset smt-2llc
    """
    from ktstr.errors import UserError
    from ktstr.kernel.resolve import resolve_kernel
    from ktstr.run.boot import boot_retrying
    from ktstr.run.params import exec_plan
    from ktstr.run.rundir import finish_run_dir, make_run_dir
    from ktstr.vm.argv import kernel_cmdline
    from ktstr.vm.host import AccelRequest

    interactive = command is None
    if interactive and not sys.stdin.isatty():
        raise UserError("no terminal for an interactive shell: use --exec CMD")
    topo = resolve_topology(topology, preset_name, DEFAULT_TOPOLOGY)
    k = resolve_kernel(kernel)
    from ktstr.run.probe import select_accel

    choice = select_accel(AccelRequest(accel), k)
    click.echo(f"ktstr: {k.release or k.version}, {topo.label} ({topo.total_cpus} vCPUs), "
               f"{choice.describe()}", err=True)
    from ktstr.run.image import GuestFiles, guest_image, include_files_of, kernel_files
    from ktstr.vm.snapshot import snapshots_enabled

    gfiles = GuestFiles()
    gfiles.update(kernel_files(k))
    gfiles.update(include_files_of(includes))
    image = guest_image(gfiles, k)
    run_dir = make_run_dir()
    if interactive:  # a terminal session is booted, never restored
        status = _interactive(k.image_path, image.initrd(run_dir), topo, choice, run_dir,
                              memory_mb)
        finish_run_dir(run_dir, keep=keep)
        sys.exit(status)
    assert command is not None
    plan = exec_plan(command)
    outcome = boot_retrying(make_initrd=lambda _choice: (image, plan), kernel=k.image_path,
                            cmdline=kernel_cmdline(), topology=topo, accel=choice,
                            run_dir=run_dir, work_timeout_s=EXEC_TIMEOUT_S,
                            memory_mb=memory_mb, expect_exec=True, name="shell",
                            progress=lambda m: click.echo(f"ktstr: {m}", err=True),
                            snapshots=snapshots_enabled())
    if outcome.boot:
        click.echo(f"ktstr: boot: {outcome.boot}", err=True)
    if outcome.emulator_fault:
        click.echo(f"ktstr: the command ran again after an emulator fault "
                   f"({outcome.emulator_fault.strip()[-120:]}); its output is the retry's",
                   err=True)
    res = outcome.exec_result
    kept = finish_run_dir(run_dir, keep=keep or res is None)
    if res is None:
        click.echo(f"ktstr: VM {outcome.vm_outcome.value}: {outcome.detail}", err=True)
        if outcome.panic_text:
            click.echo(outcome.panic_text, err=True)
        else:
            click.echo(outcome.console_tail, err=True)
        if kept:
            click.echo(f"ktstr: run dir kept: {run_dir}", err=True)
        sys.exit(125)
    sys.stdout.write(res.stdout)
    sys.stdout.flush()
    sys.stderr.write(res.stderr)
    if kept:
        click.echo(f"ktstr: run dir kept: {run_dir}", err=True)
    sys.exit(res.status)


def _interactive(kernel: Path, initrd: Path, topo: Topology, choice: AccelChoice,
                 run_dir: Path, memory_mb: int | None) -> int:
    from ktstr.vm.argv import VmConfig, kernel_cmdline
    from ktstr.vm.machine import Vm

    cfg = VmConfig(kernel=str(kernel), initrd=str(initrd), cmdline=kernel_cmdline(quiet=True),
                   topology=topo, memory_mb=memory_mb, accel=choice.accel,
                   tcg_threading=choice.tcg_threading, interactive=True)
    from ktstr.guest.protocol import Hello
    from ktstr.run.params import shell_plan
    from ktstr.vm.host import scaled_timeout

    with Vm(cfg, run_dir, name="shell") as vm:
        vm.expect(Hello, scaled_timeout(60.0, choice.accel, topo), what="hello (boot)")
        vm.send(shell_plan().line())
        code = vm.wait_exit(7 * 24 * 3600.0)
    return 0 if code == 0 else 1
