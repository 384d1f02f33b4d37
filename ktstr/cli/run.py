"""``ktstr run``: one scheduler, one kernel, one topology, one verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ktstr.cli.app import App, pass_app
from ktstr.cli.options import (
    DURATION,
    accel_option,
    cold_boot_option,
    kernel_option,
    resolve_topology,
    topology_options,
)


def _progress(msg: str) -> None:
    click.echo(f"ktstr: {msg}", err=True)


@click.command("run")
@kernel_option
@click.option("-s", "--scheduler", "scheduler_name", default="eevdf", show_default=True,
              help="A registered scheduler (see `ktstr list schedulers`).")
@topology_options
@click.option("--duration", type=DURATION, default=5.0, show_default=True,
              help="How long the workload runs under the scheduler: seconds, or with a "
              "unit (30s, 2m).")
@click.option("--workload", type=click.Choice(["spin", "stress-ng", "hackbench", "none"]),
              default="spin", show_default=True,
              help="Default workload: N CPU-bound workers (spin, stress-ng --cpu N) or "
              "hackbench in a loop.")
@click.option("-p", "--payload", "payload_name", default=None, metavar="NAME",
              help="Run a declared payload (see `ktstr list payloads`) to completion instead "
              "of the default workload; its checks decide the verdict too.")
@click.option("--payload-arg", "payload_args", multiple=True, metavar="ARG",
              help="Argument for the payload, after its default arguments (repeatable; "
              "--payload-arg=--cpu for dashes).")
@click.option("--scenario", "scenario_name", default=None, metavar="NAME",
              help="A canned scenario (see `ktstr list scenarios`) instead of the default "
              "workload: cgroups of worker processes, judged by starvation, fairness, gap "
              "and isolation checks.")
@click.option("--workers", type=int, default=None,
              help="Workload workers (default: one per vCPU).")
@click.option("--extra-sched-arg", "extra_args", multiple=True, metavar="ARG",
              help="Extra scheduler argument, after the declared ones (repeatable; use "
              "--extra-sched-arg=-x for arguments that start with a dash).")
@click.option("--one-shot-sched-arg", "one_shot_args", multiple=True, metavar="ARG",
              help="A declared one-shot fault: an extra scheduler argument for the first "
              "run only, never for its traced rerun (e.g. scx_qmap's -e 100: the failure "
              "does not recur and the result is marked flaky).")
@click.option("--no-repro", is_flag=True,
              help="On FAIL, do not rerun the cell with a scheduling trace (by default it "
              "is rerun once; the trace lands in RUN_DIR/repro/trace.json and trace.txt).")
@click.option("--flags", "flag_profile", default=None, metavar="PROFILE",
              help="A flag profile of the scheduler (e.g. default, a+b).")
@click.option("-i", "--include", "includes", multiple=True, type=click.Path(
    exists=True, dir_okay=False, path_type=Path),
    help="Put FILE in the guest: executables (with their libraries) in /usr/bin, other "
    "files in /include-files (repeatable).")
@accel_option
@cold_boot_option
@click.option("--memory-mb", type=int, default=None, help="Guest memory (default: rule).")
@click.option("--keep", is_flag=True, help="Keep the run directory even on PASS.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option("--list", "list_only", is_flag=True,
              help="Print the cell this command describes (kernel spec, scheduler, topology, "
              "workload, merged arguments) as JSON and exit; boots nothing.")
@pass_app
def run(
    app: App, kernel: str | None, scheduler_name: str, topology: str | None,
    preset_name: str | None, duration: float, workload: str, payload_name: str | None,
    payload_args: tuple[str, ...], scenario_name: str | None, workers: int | None,
    extra_args: tuple[str, ...], one_shot_args: tuple[str, ...], no_repro: bool,
    flag_profile: str | None, includes: tuple[Path, ...],
    accel: str,
    memory_mb: int | None, keep: bool, as_json: bool, list_only: bool,
) -> None:
    """Boot KERNEL with the topology, run SCHEDULER under a workload, print the verdict.

    The verdict is PASS, FAIL (the scheduler died, never attached, was ejected by the
    kernel, or the kernel crashed), ERROR (the harness or emulator failed) or SKIP (the
    kernel has no sched_ext). Exit code: 0 PASS, 1 FAIL, 3 ERROR, 4 SKIP.

    A FAIL is rerun once with a scheduling trace (tracefs sched and sched_ext events,
    the scheduler's verbose flag): the result says whether it reproduced or was flaky,
    and the run directory's repro/trace.json opens in Perfetto (--no-repro: no rerun).
    """
    from ktstr.results.report import print_result
    from ktstr.run.execute import run_scheduler
    from ktstr.run.request import RunRequest, Workload
    from ktstr.scenario.canned import canned_scenario
    from ktstr.vm.host import AccelRequest

    sched = app.registry.scheduler(scheduler_name)
    topo = resolve_topology(topology, preset_name, sched.topology)
    profile = sched.flags.profile(flag_profile) if flag_profile else None
    request = RunRequest(
        scheduler=sched, kernel=kernel, topology=topo, duration_s=duration,
        workload=Workload(workload), workers=workers, extra_sched_args=extra_args,
        flag_profile=profile, accel=AccelRequest(accel), memory_mb=memory_mb, keep=keep,
        declaration_modules=app.declaration_modules, include_files=includes,
        payload=app.registry.payload(payload_name) if payload_name else None,
        payload_args=payload_args,
        scenario=canned_scenario(scenario_name, topo) if scenario_name else None,
        repro=not no_repro, one_shot_sched_args=one_shot_args,
    )
    if list_only:
        app.echo_json(request.cell())
        return
    result = run_scheduler(request, progress=_progress)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        print_result(result)
    sys.exit(result.verdict.exit_code)
