"""Options shared by the commands that boot VMs."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ktstr.declare.presets import preset
from ktstr.declare.topology import Topology
from ktstr.errors import UserError
from ktstr.vm.host import AccelRequest

F = TypeVar("F", bound=Callable[..., Any])


def kernel_option(f: F) -> F:
    return click.option(
        "-k", "--kernel", "kernel", envvar="KTSTR_KERNEL", metavar="SPEC",
        help="Kernel: version (7.2, 7.2.13), cache key, or path to a bzImage/build tree. "
        "Default: $KTSTR_KERNEL, else the newest cached kernel with sched_ext.",
    )(f)


def accel_option(f: F) -> F:
    return click.option(
        "--accel", type=click.Choice([a.value for a in AccelRequest]), default="auto",
        show_default=True, envvar="KTSTR_ACCEL",
        help="auto = KVM when it can boot a stock kernel (probed once), else TCG "
        "(env KTSTR_ACCEL).",
    )(f)


def _cold_boot(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:  # the environment reaches every VM this command starts, in any process
        os.environ["KTSTR_SNAPSHOTS"] = "0"
    return value


def cold_boot_option(f: F) -> F:
    return click.option(
        "--cold-boot", is_flag=True, expose_value=False, is_eager=True, callback=_cold_boot,
        help="Boot every VM from scratch: restore no snapshot and save none (the same as "
        "env KTSTR_SNAPSHOTS=0; see docs/running.md, Snapshots).",
    )(f)


def topology_options(f: F) -> F:
    f = click.option("--preset", "preset_name", metavar="NAME",
                     help="A gauntlet preset (see `ktstr list presets`).")(f)
    f = click.option("-t", "--topology", "topology", metavar="N,L,C,T",
                     help="NUMA nodes, LLCs (total), cores per LLC, threads per core; "
                     "or a label such as 1n2l2c1t.")(f)
    return f


def resolve_topology(topology: str | None, preset_name: str | None,
                     default: Topology) -> Topology:
    if topology and preset_name:
        raise UserError("give --topology or --preset, not both")
    if preset_name:
        return preset(preset_name).topology
    if topology:
        return Topology.parse(topology)
    return default


if TYPE_CHECKING:  # click 8.4 types ParamType as generic; older clicks do not subscript
    _FloatParam = click.ParamType[float]
else:
    _FloatParam = click.ParamType


class Duration(_FloatParam):
    """Seconds as a number or with a unit: ``5``, ``2.5s``, ``3m``, ``1h``."""

    name = "duration"
    _UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        scale = self._UNITS.get(text[-1:], None)
        number = text[:-1] if scale is not None else text
        try:
            seconds = float(number) * (scale or 1.0)
        except ValueError:
            self.fail(f"{value!r} is not a duration: use seconds (5, 2.5) or a unit "
                      "(30s, 3m, 1h)", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r}: a duration must be positive", param, ctx)
        return seconds


DURATION = Duration()
