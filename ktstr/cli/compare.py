"""``ktstr compare``: run A and B interleaved (or read two result sets) and say, per
metric, better / worse / no significant difference / inconclusive."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ktstr.cli.app import App, pass_app
from ktstr.cli.options import (
    DURATION,
    accel_option,
    cold_boot_option,
    kernel_option,
    topology_options,
)
from ktstr.errors import UserError

if TYPE_CHECKING:
    from ktstr.compare.model import Comparison
    from ktstr.declare.scheduler import Scheduler
    from ktstr.run.request import RunRequest

#: exit codes (docs/compare.md)
EXIT_OK = 0
EXIT_GATE = 1
EXIT_RUNS = 3

if TYPE_CHECKING:  # click 8.4 types ParamType as generic; older clicks do not subscript
    _FloatParam = click.ParamType[float]
else:
    _FloatParam = click.ParamType


class Fraction(_FloatParam):
    """``5%`` or ``0.05``."""

    name = "fraction"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            x = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            self.fail(f"{value!r}: give a percentage (5%) or a fraction (0.05)", param, ctx)
        if not 0 <= x < 1:
            self.fail(f"{value!r}: must be at least 0 and below 100%", param, ctx)
        return x


def need_compare_extra() -> None:
    """``UserError`` naming the extra when scipy or matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as exc:
        raise UserError(f"this command needs the 'compare' extra ({exc.name} is missing): "
                        "pip install 'ktstr[compare]'") from exc


def _echo(msg: str) -> None:
    click.echo(f"ktstr: {msg}", err=True)


def _sysctls(pairs: tuple[str, ...]) -> list[Any]:
    from ktstr.declare.settings import Sysctl

    out = []
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UserError(f"--sysctl {p!r}: give KEY=VALUE (kernel.sched_autogroup_enabled=0)")
        out.append(Sysctl(key.strip(), value.strip()))
    return out


def _variant(sched: Scheduler, binary: Path | None, sysctls: tuple[str, ...]) -> Scheduler:
    from ktstr.declare.spec import SchedulerSpec

    update: dict[str, Any] = {}
    if binary is not None:
        if not binary.is_file():
            raise UserError(f"--binary {binary}: no such file")
        update["binary"] = SchedulerSpec.path(str(binary.resolve()))
    if sysctls:
        update["sysctls"] = (*sched.sysctls, *_sysctls(sysctls))
    return sched.model_copy(update=update) if update else sched


@click.command("compare")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--a", "a_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              metavar="PATH", help="Result set A (repeatable): instead of the two PATHS.")
@click.option("--b", "b_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              metavar="PATH", help="Result set B (repeatable).")
@kernel_option
@click.option("-s", "--scheduler", "scheduler_name", default="eevdf", show_default=True,
              help="Scheduler of A (and of B unless --b-scheduler).")
@topology_options
@click.option("--duration", type=DURATION, default=5.0, show_default=True,
              help="Workload time per run (5, 30s, 2m).")
@click.option("--scenario", "scenario_name", default="steady", show_default=True,
              metavar="NAME", help="Canned scenario the workers run (`ktstr list scenarios`); "
              "'none' for the default workload or a --payload alone.")
@click.option("-p", "--payload", "payload_name", default=None, metavar="NAME",
              help="A declared payload (stress-ng, hackbench, cyclictest, ...) instead of a "
              "scenario.")
@click.option("--payload-arg", "payload_args", multiple=True, metavar="ARG",
              help="Payload argument (repeatable; --payload-arg=-t for dashes).")
@click.option("--workers", type=int, default=None, help="Workers per cgroup.")
@click.option("--sched-arg", "a_args", multiple=True, metavar="ARG",
              help="Extra scheduler argument of A (repeatable; --sched-arg=-x).")
@click.option("--flags", "a_flags", default=None, metavar="PROFILE", help="Flag profile of A.")
@click.option("--binary", "a_binary", type=click.Path(path_type=Path), default=None,
              help="Scheduler binary of A (default: discovery).")
@click.option("--sysctl", "a_sysctls", multiple=True, metavar="KEY=VALUE",
              help="Sysctl for A, after the scheduler's own (repeatable).")
@click.option("--b-scheduler", default=None, metavar="NAME", help="B: another scheduler.")
@click.option("--b-kernel", default=None, metavar="SPEC", help="B: another kernel.")
@click.option("--b-sched-arg", "b_args", multiple=True, metavar="ARG",
              help="B: extra scheduler arguments (repeatable; replace A's).")
@click.option("--b-flags", default=None, metavar="PROFILE", help="B: another flag profile.")
@click.option("--b-binary", type=click.Path(path_type=Path), default=None,
              help="B: another binary of the same scheduler (a new build).")
@click.option("--b-sysctl", "b_sysctls", multiple=True, metavar="KEY=VALUE",
              help="B: sysctls (repeatable; replace A's --sysctl).")
@click.option("-n", "--runs", type=click.IntRange(1, 200), default=8, show_default=True,
              help="Runs of each side.")
@click.option("-j", "--parallel", type=click.IntRange(1, 64), default=None,
              help="VMs at once (default: as many as the CPU budget holds).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where the runs go (a/run-NN.json, b/run-NN.json, "
              "comparison.json, summary.md). Default: ./ktstr-compare-<time>.")
@accel_option
@cold_boot_option
@click.option("--memory-mb", type=int, default=None, help="Guest memory (default: rule).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.05, show_default=True, help="Family-wise error rate (Holm).")
@click.option("--min-effect", type=Fraction(), default="5%", show_default=True,
              help="Smallest relative change that matters (5% or 0.05).")
@click.option("--min-runs", type=click.IntRange(2, 1000), default=3, show_default=True,
              help="Fewer counted runs on a side make every metric inconclusive.")
@click.option("--fail-on", "fail_on", multiple=True, metavar="RULE",
              help="Exit 1 when a metric has this outcome: OUTCOME[:METRIC-GLOB[:PCT]], "
              "OUTCOME = worse, better, different or inconclusive (repeatable; e.g. worse, "
              "worse:work.units:10%). Harness metrics only when the glob names them.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the comparison as JSON.")
@click.option("--markdown", "md_out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write a markdown summary (e.g. $GITHUB_STEP_SUMMARY).")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the HTML report with plots.")
@pass_app
def compare(app: App, paths: tuple[Path, ...], a_paths: tuple[Path, ...],
            b_paths: tuple[Path, ...], kernel: str | None, scheduler_name: str,
            topology: str | None, preset_name: str | None, duration: float,
            scenario_name: str, payload_name: str | None, payload_args: tuple[str, ...],
            workers: int | None, a_args: tuple[str, ...], a_flags: str | None,
            a_binary: Path | None, a_sysctls: tuple[str, ...], b_scheduler: str | None,
            b_kernel: str | None, b_args: tuple[str, ...], b_flags: str | None,
            b_binary: Path | None, b_sysctls: tuple[str, ...], runs: int,
            parallel: int | None, out_dir: Path | None, accel: str, memory_mb: int | None,
            alpha: float, min_effect: float, min_runs: int, fail_on: tuple[str, ...],
            json_out: Path | None, md_out: Path | None, html_out: Path | None) -> None:
    """Is B better or worse than A, and is the difference real or noise?

    \b
    Run mode: A and B differ in one dimension (--b-scheduler, --b-kernel,
    --b-sched-arg, --b-flags, --b-binary or --b-sysctl) and run the same workload
    --runs times each, interleaved A, B, A, B, in parallel within the CPU budget:
      ktstr compare --kernel 7.2 -t 1,1,4,1 -s scx_simple --b-scheduler scx_cpu0
    Result mode: compare two existing result sets (`ktstr run --json` files, a
    directory of them, a compare run's a/ and b/, or pytest sidecar directories):
      ktstr compare before/ after/      ktstr compare --a r1.json --a r2.json --b ...

    Per metric: medians, B/A with a bootstrap 95% interval, a two-sided Mann-Whitney U
    p-value, Holm-corrected over the metrics. Outcome: better, worse, no significant
    difference, or inconclusive (with the runs needed). Exit code: 0 compared (no
    --fail-on rule tripped), 1 a --fail-on rule tripped, 2 usage error, 3 a side kept
    fewer than --min-runs runs because runs errored.
    """
    need_compare_extra()
    from ktstr.compare.analyse import compare_results
    from ktstr.compare.model import CompareOptions
    from ktstr.compare.render import GateRule, gate, markdown, terminal
    from ktstr.compare.sources import describe_side, load_side, side_labels
    from ktstr.results.metricdefs import payload_hints

    rules = [GateRule.parse(r) for r in fail_on]
    opts = CompareOptions(alpha=alpha, min_effect=min_effect, min_runs=min_runs)
    hints = payload_hints(app.registry.payloads())
    if paths and (a_paths or b_paths):
        raise UserError("give two PATHS or --a/--b, not both")
    if paths and len(paths) != 2:
        raise UserError(f"give two result sets (A and B), not {len(paths)}")
    side_paths = ((paths[0],), (paths[1],)) if paths else (a_paths, b_paths)
    if bool(side_paths[0]) != bool(side_paths[1]):
        raise UserError("give result sets for both A and B")
    errored = False
    if side_paths[0]:
        a_runs, b_runs = load_side(side_paths[0]), load_side(side_paths[1])
        labels = side_labels(a_runs, b_runs, (" + ".join(str(p) for p in side_paths[0]),
                                              " + ".join(str(p) for p in side_paths[1])))
        c = compare_results(
            [r.result for r in a_runs], [r.result for r in b_runs], a_label=labels[0],
            b_label=labels[1], opts=opts, hints=hints, a_description=describe_side(a_runs),
            b_description=describe_side(b_runs),
            sources=([r.source for r in a_runs], [r.source for r in b_runs]),
            groups=([r.group for r in a_runs], [r.group for r in b_runs]))
        report_dir = None
    else:
        out = out_dir or Path(f"ktstr-compare-{dt.datetime.now():%Y%m%d-%H%M%S}")
        c, errored = _run_mode(
            app, out, kernel=kernel, scheduler_name=scheduler_name, topology=topology,
            preset_name=preset_name, duration=duration, scenario_name=scenario_name,
            payload_name=payload_name, payload_args=payload_args, workers=workers,
            a_args=a_args, a_flags=a_flags, a_binary=a_binary, a_sysctls=a_sysctls,
            b_scheduler=b_scheduler, b_kernel=b_kernel, b_args=b_args, b_flags=b_flags,
            b_binary=b_binary, b_sysctls=b_sysctls, runs=runs, parallel=parallel, accel=accel,
            memory_mb=memory_mb, opts=opts, hints=hints)
        report_dir = out
    failures = gate(c, rules)
    click.echo(terminal(c))
    md = markdown(c, gate_failures=failures)
    if report_dir is not None:
        (report_dir / "comparison.json").write_text(_comparison_json(c), encoding="utf-8")
        (report_dir / "summary.md").write_text(md, encoding="utf-8")
    if json_out is not None:
        json_out.write_text(_comparison_json(c), encoding="utf-8")
    if md_out is not None:
        with md_out.open("a", encoding="utf-8") as f:  # job summaries are appended to
            f.write(md)
    if html_out is not None:
        from ktstr.results.html import Report, write_report

        write_report(html_out, Report(title=f"ktstr compare: {c.b.label} vs {c.a.label}",
                                      comparisons=[c],
                                      sources=[*c.a.sources[:3], *c.b.sources[:3]]))
        _echo(f"wrote {html_out}")
    for line in failures:
        click.echo(f"GATE: {line}", err=True)
    if failures:
        sys.exit(EXIT_GATE)
    short = [s for s in (c.a, c.b) if s.used < opts.min_runs]
    if errored and short:
        _echo("runs errored and left " + ", ".join(f"{s.label} with {s.used}" for s in short)
              + f" counted runs (fewer than {opts.min_runs})")
        sys.exit(EXIT_RUNS)


def _comparison_json(c: Comparison) -> str:
    import json

    return json.dumps({"kind": "comparison", **c.model_dump(mode="json")}, indent=2) + "\n"


def _run_mode(app: App, out: Path, *, kernel: str | None, scheduler_name: str,
              topology: str | None, preset_name: str | None, duration: float,
              scenario_name: str, payload_name: str | None, payload_args: tuple[str, ...],
              workers: int | None, a_args: tuple[str, ...], a_flags: str | None,
              a_binary: Path | None, a_sysctls: tuple[str, ...], b_scheduler: str | None,
              b_kernel: str | None, b_args: tuple[str, ...], b_flags: str | None,
              b_binary: Path | None, b_sysctls: tuple[str, ...], runs: int,
              parallel: int | None, accel: str, memory_mb: int | None, opts: Any,
              hints: Any) -> tuple[Comparison, bool]:
    from ktstr.cli.options import resolve_topology
    from ktstr.compare.analyse import compare_results
    from ktstr.compare.execute import check_one_dimension, run_pair, write_requests
    from ktstr.results.model import Verdict
    from ktstr.run.request import RunRequest
    from ktstr.scenario.canned import canned_scenario
    from ktstr.vm.host import AccelRequest

    reg = app.registry
    sched_a = _variant(reg.scheduler(scheduler_name), a_binary, a_sysctls)
    sched_b = _variant(reg.scheduler(b_scheduler) if b_scheduler else
                       reg.scheduler(scheduler_name), b_binary or a_binary,
                       b_sysctls or a_sysctls)
    topo = resolve_topology(topology, preset_name, sched_a.topology)
    payload = reg.payload(payload_name) if payload_name else None
    scenario = None
    if scenario_name != "none" and payload is None:
        scenario = canned_scenario(scenario_name, topo)
    common: dict[str, Any] = {
        "topology": topo, "duration_s": duration, "workers": workers, "payload": payload,
        "payload_args": payload_args, "scenario": scenario, "accel": AccelRequest(accel),
        "memory_mb": memory_mb, "declaration_modules": app.declaration_modules}
    a = RunRequest(scheduler=sched_a, kernel=kernel, extra_sched_args=a_args,
                   flag_profile=sched_a.flags.profile(a_flags) if a_flags else None, **common)
    flags_b = b_flags or a_flags
    b = RunRequest(scheduler=sched_b, kernel=b_kernel or kernel,
                   extra_sched_args=b_args or a_args,
                   flag_profile=sched_b.flags.profile(flags_b) if flags_b else None, **common)
    diff = check_one_dimension(a, b)
    if not diff:
        _echo("A and B are the same (an A/A comparison: every metric should show no "
              "difference)")
    out.mkdir(parents=True, exist_ok=True)
    write_requests(out, a, b, diff)
    ra, rb = run_pair(a, b, runs=runs, out_dir=out, progress=_echo, parallel=parallel)
    d = diff[0] if diff else None
    label_a = d.a if d else _label(a)
    label_b = d.b if d else _label(b)
    if label_a == label_b:
        label_a, label_b = f"{label_a} (A)", f"{label_b} (B)"
    c = compare_results(ra, rb, a_label=label_a, b_label=label_b,
                        dimension=d.dimension if d else "A/A", opts=opts, hints=hints,
                        a_description=_describe(a), b_description=_describe(b),
                        sources=([str(out / "a")], [str(out / "b")]))
    errored = any(r.verdict is Verdict.ERROR for r in (*ra, *rb))
    return c, errored


def _label(r: RunRequest) -> str:
    return r.scheduler.name + (" " + " ".join(r.sched_args) if r.sched_args else "")


def _describe(r: RunRequest) -> str:
    """One side of a comparison; a payload runs to its end (its duration is a bound)."""
    work = (f"scenario {r.scenario.name} for {r.duration_s:g} s" if r.scenario else
            f"payload {r.payload.name} (runs to its end; bound {r.duration_s:g} s + slack)"
            if r.payload else f"{r.workload.value} for {r.duration_s:g} s")
    return (f"{r.scheduler.name}" + (f" [{' '.join(r.sched_args)}]" if r.sched_args else "")
            + f" on {r.kernel or '(default kernel)'}, {r.topology.label}, {work}")
