"""``ktstr list ...`` and ``ktstr show ...``: what is declared, and how it resolves."""

from __future__ import annotations

from typing import Any

import click

from ktstr.cli.app import App, pass_app
from ktstr.cli.output import table
from ktstr.declare.presets import PRESETS
from ktstr.declare.scheduler import Scheduler
from ktstr.declare.topology import HostCapacity, host_fits

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@click.group("list")
def list_group() -> None:
    """List declared schedulers, payloads and topology presets."""


@list_group.command("schedulers")
@_json
@pass_app
def list_schedulers(app: App, as_json: bool) -> None:
    """Registered schedulers (built-ins, entry points, --declarations modules)."""
    scheds = app.registry.schedulers()
    if as_json:
        app.echo_json([_scheduler_json(app, s) for s in scheds])
        return
    rows = [
        (
            s.name,
            s.binary.describe(),
            s.topology.label,
            app.registry.origin("scheduler", s.name),
            s.description,
        )
        for s in scheds
    ]
    click.echo(table(["NAME", "BINARY", "TOPOLOGY", "FROM", "DESCRIPTION"], rows))


@list_group.command("payloads")
@_json
@pass_app
def list_payloads(app: App, as_json: bool) -> None:
    """Registered payloads (workload binaries)."""
    payloads = app.registry.payloads()
    if as_json:
        app.echo_json([p.model_dump(mode="json") for p in payloads])
        return
    rows = [
        (p.name, p.executable or "-", p.output.value, " ".join(p.default_args), p.description)
        for p in payloads
    ]
    click.echo(table(["NAME", "EXECUTABLE", "OUTPUT", "DEFAULT ARGS", "DESCRIPTION"], rows))


@list_group.command("scenarios")
@click.option("--topology", "topology_text", default="1,2,2,1", show_default=True,
              metavar="N,L,C,T", help="Topology the cgroups and worker counts are shown for.")
@_json
def list_scenarios(topology_text: str, as_json: bool) -> None:
    """Canned scenarios for `ktstr run --scenario NAME`, with their steps."""
    from ktstr.declare.topology import Topology
    from ktstr.scenario.canned import CANNED
    from ktstr.scenario.steps import describe_op

    topo = Topology.parse(topology_text)
    data = []
    for c in CANNED.values():
        s = c.scenario(topo)
        data.append({
            "name": c.name, "description": c.description,
            "steps": [{"hold": st.hold.describe(), "ops": [describe_op(o) for o in st.ops]}
                      for st in s.steps],
        })
    if as_json:
        App.echo_json(data)
        return
    rows = [(d["name"], len(d["steps"]), d["description"]) for d in data]
    click.echo(table(["SCENARIO", "STEPS", "DESCRIPTION"], rows))
    click.echo(f"\n{len(data)} scenarios (worker counts follow the topology; shown for "
               f"{topo.label} with --json)")


@list_group.command("presets")
@_json
def list_presets(as_json: bool) -> None:
    """Gauntlet topology presets, with CPU counts and whether this host can hold them."""
    host = HostCapacity.detect()
    data = []
    for p in PRESETS:
        fits = host_fits(p.topology, host)
        data.append(
            {
                "name": p.name,
                "topology": p.topology.label,
                "numa_nodes": p.topology.numa_nodes,
                "llcs": p.topology.llcs,
                "cores_per_llc": p.topology.cores_per_llc,
                "threads_per_core": p.topology.threads_per_core,
                "cpus": p.cpus,
                "fits_host": fits.accepted,
                "host_reason": fits.reason,
                "description": p.description,
            }
        )
    if as_json:
        App.echo_json(data)
        return
    rows = [
        (d["name"], d["topology"], d["cpus"], "yes" if d["fits_host"] else "no", d["description"])
        for d in data
    ]
    click.echo(table(["PRESET", "TOPOLOGY", "CPUS", "FITS HOST", "DESCRIPTION"], rows))
    click.echo(
        f"\n{len(PRESETS)} presets; this host: {host.cpus} CPUs x overcommit "
        f"{host.vcpu_overcommit} = {host.max_vcpus} vCPUs, {host.memory_mb} MiB available"
    )


@click.group("show")
def show_group() -> None:
    """Show one declaration in full."""


def _scheduler_json(app: App, s: Scheduler) -> dict[str, Any]:
    data = s.model_dump(mode="json", by_alias=True)
    data["binary_spec"] = s.binary.describe()
    data["has_active_scheduling"] = s.binary.has_active_scheduling
    data["resolved_topology"] = {
        "label": s.topology.label,
        "total_cpus": s.topology.total_cpus,
    }
    data["merged_args"] = s.merged_args(inline_config=s.config_file_def is not None)
    data["flag_profiles"] = [p.name for p in s.flag_profiles()]
    data["declared_in"] = app.registry.origin("scheduler", s.name)
    return data


@show_group.command("scheduler")
@click.argument("name")
@_json
@pass_app
def show_scheduler(app: App, name: str, as_json: bool) -> None:
    """Every field of scheduler NAME, its resolved topology and merged argument list."""
    s = app.registry.scheduler(name)
    data = _scheduler_json(app, s)
    if as_json:
        app.echo_json(data)
        return
    t = s.topology
    lines = [
        f"name:            {s.name}",
        f"declared in:     {data['declared_in']}",
        f"binary:          {s.binary.describe()}",
        f"active sched:    {'yes' if s.binary.has_active_scheduling else 'no (EEVDF)'}",
        f"topology:        {t.label} ({t.numa_nodes} NUMA node(s), {t.llcs} LLC(s), "
        f"{t.cores_per_llc} core(s)/LLC, {t.threads_per_core} thread(s)/core = "
        f"{t.total_cpus} CPUs)",
        f"constraints:     {s.constraints.model_dump()}",
        f"sysctls:         {', '.join(f'{x.key}={x.value}' for x in s.sysctls) or '-'}",
        f"kargs:           {' '.join(s.kargs) or '-'}",
        f"cgroup_parent:   {s.cgroup_parent or '-'}",
        f"config_file:     {s.config_file or '-'}",
        "config_file_def: "
        + (
            f"{s.config_file_def.arg_template} -> {s.config_file_def.guest_path}"
            if s.config_file_def
            else "-"
        ),
        f"sched_args:      {' '.join(s.sched_args) or '-'}",
        f"kernels:         {', '.join(s.kernels) or '(no filter)'}",
        f"checks:          {s.assert_.model_dump(exclude_none=True) or '(defaults)'}",
        f"flag profiles:   {', '.join(data['flag_profiles'])}",
        "merged args:     " + (" ".join(data["merged_args"]) or "-"),
        "  (order: config_file, cgroup_parent, sched_args, test extra args, flag args)",
    ]
    click.echo("\n".join(lines))


@show_group.command("payload")
@click.argument("name")
@_json
@pass_app
def show_payload(app: App, name: str, as_json: bool) -> None:
    """Every field of payload NAME."""
    p = app.registry.payload(name)
    data = p.model_dump(mode="json")
    if as_json:
        app.echo_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key + ':':<18}{value}")
