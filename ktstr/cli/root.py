"""The root ``ktstr`` group. Subcommands are imported only when used."""

from __future__ import annotations

import importlib
import logging

import click

from ktstr import __version__
from ktstr.cli.app import App

#: command name -> "module:attribute"; each module owns one click command or group
COMMANDS: dict[str, str] = {
    "cache": "ktstr.cli.cache:cache",
    "compare": "ktstr.cli.compare:compare",
    "kernel": "ktstr.cli.kernel:kernel",
    "list": "ktstr.cli.listing:list_group",
    "schedulers": "ktstr.cli.schedulers:schedulers",
    "show": "ktstr.cli.listing:show_group",
    "sched": "ktstr.cli.sched:sched_group",
    "preference": "ktstr.cli.preference:preference_group",
    "report": "ktstr.cli.report:report",
    "result": "ktstr.cli.result:result",
    "run": "ktstr.cli.run:run",
    "shell": "ktstr.cli.shell:shell",
    "test": "ktstr.cli.testcmd:test",
    "gauntlet": "ktstr.cli.testcmd:gauntlet",
    "verifier": "ktstr.cli.verifier:verifier",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ktstr")
@click.option(
    "-d",
    "--declarations",
    "declaration_modules",
    multiple=True,
    envvar="KTSTR_DECLARATIONS",
    metavar="MODULE",
    help="Also load schedulers/payloads declared in this Python module: an importable "
    "name, a module in the current directory, or a file path (./my_scheds.py). Repeatable; "
    "env KTSTR_DECLARATIONS, space-separated. Entry-point declarations always load.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, declaration_modules: tuple[str, ...], verbose: int) -> None:
    """ktstr: test Linux process schedulers (sched_ext and EEVDF) on real kernels in QEMU.

    Declare a scheduler and its workloads in Python; ktstr resolves a real kernel, packs
    an initramfs, boots QEMU with the topology you asked for, runs the scheduler and the
    workloads inside, and returns a verdict.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        # qemu.qmp logs a failed negotiation at ERROR; ktstr reports the cause itself
        logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)
    ctx.obj = App(declaration_modules=declaration_modules, verbose=verbose)
