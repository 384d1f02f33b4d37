"""Every declared field has an effect, and every sweep cell is the cell it claims to be.

One test (or a few) per defect of issue 13; each failed on the code before the fix.
The VM-tier proofs are in ``tests/integration/test_truthful_runs.py``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from ktstr import HostCapacity, Scheduler, SchedulerSpec, Sysctl
from ktstr.declare.checks import Assert
from ktstr.declare.payload import Payload, PayloadKind
from ktstr.declare.topology import Topology
from ktstr.errors import UserError
from ktstr.guest.console import ConsoleEventKind, ConsoleParser
from ktstr.guest.protocol import Blob, Event, Mode, RunPlan
from ktstr.kernel.cache import KernelCache
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.id import KernelId, ResolvedKernel, filter_accepts_kernel
from ktstr.results.checks import check_imbalance, cpu_busy, imbalance_cpus, parse_cpu_stat
from ktstr.results.judge import error_lines, judge_scheduler, setup_errors
from ktstr.results.model import Verdict, VmOutcome
from ktstr.results.report import describe_workload
from ktstr.run.boot import BootOutcome
from ktstr.run.execute import guest_plan, judge_run, keep_outputs, payload_argv
from ktstr.run.image import KERNEL_CONFIG_GUEST, payload_files, payload_guest_path
from ktstr.run.request import RunRequest, Workload
from ktstr.sweep.cells import (
    KernelEntry,
    MatrixFormat,
    expand_verifier_cells,
    topology_choices,
)
from ktstr.testing.kernel import FakeArchive, split_kernel_debs
from ktstr.vm.argv import Accel, TcgThreading
from ktstr.vm.host import AccelChoice


class Ran:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.output = code, stdout, stdout + stderr


@pytest.fixture
def ktstr(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], Ran]:
    """``ktstr ARGS`` in process through the console entry point (errors -> exit codes)."""
    from ktstr.cli import main

    def invoke(args: list[str]) -> Ran:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out, err = capsys.readouterr()
        code = info.value.code
        return Ran(code if isinstance(code, int) else 1, out, err)

    return invoke


BIG_HOST = HostCapacity(cpus=512, memory_mb=1 << 20)
TCG = AccelChoice(accel=Accel.TCG, reason="test")
KVM = AccelChoice(accel=Accel.KVM, reason="test")
T1221 = Topology(1, 2, 2, 1)

K72 = KernelEntry(spec="7.2..=7.3", version="7.2.13", key="7.2.13+deb14-amd64",
                  release="7.2.13+deb14-amd64")
K73RC = KernelEntry(spec="7.2..=7.3", version="7.3-rc7", key="7.3-rc7-amd64",
                    release="7.3.0-rc7-amd64")
K734 = KernelEntry(spec="7.2..=7.3", version="7.3.4", key="7.3.4+deb13-amd64",
                   release="7.3.4+deb13-amd64")
RANGE = [K72, K73RC, K734]


# -- 1. a range --kernel does not leak past kernels filters --------------------------------

@pytest.mark.parametrize(("kernels", "want"), [
    (["7.2"], {"7.2.13"}),
    (["7.0..7.2"], {"7.2.13"}),
    (["7.3"], {"7.3-rc7", "7.3.4"}),
    (["7.3.4"], {"7.3.4"}),
    (["7.3-rc7"], {"7.3-rc7"}),
    (["7.2.13", "7.3.4"], {"7.2.13", "7.3.4"}),
    ([], {"7.2.13", "7.3-rc7", "7.3.4"}),
    (["7.3.4+deb13-amd64"], {"7.3.4"}),  # a cache key
])
def test_filters_match_the_resolved_kernel_not_the_range_text(kernels: list[str],
                                                               want: set[str]) -> None:
    sched = Scheduler(name="s", kernels=kernels)
    plan = expand_verifier_cells([sched], RANGE, BIG_HOST,
                                 presets=topology_choices(["tiny-1llc"], []))
    assert {c.kernel.version for c in plan.cells} == want


def test_two_part_version_is_a_series_and_a_path_matches_by_label() -> None:
    k = ResolvedKernel(version="7.2.13", release="7.2.13+deb14-amd64", key="k1")
    assert filter_accepts_kernel(["7.2"], k)
    assert not filter_accepts_kernel(["7.20"], k)
    assert not filter_accepts_kernel(["7.2.12"], k)
    local = ResolvedKernel(version="7.4.0", key="local-abc", source_spec="/src/linux")
    assert filter_accepts_kernel(["/src/linux"], local)
    assert not filter_accepts_kernel(["/src/other"], local)
    assert KernelId.parse("7.2..=7.3").contains_version("7.3.4")


# -- 2. config_file reaches every path that starts the scheduler ---------------------------

def test_verifier_cell_image_packs_config_file_and_kernel_config(tmp_path: Path) -> None:
    from ktstr.run.image import guest_files
    from ktstr.sweep.execute import CellFiles, cell_guest_files, cell_plan

    cfg = tmp_path / "my.toml"
    cfg.write_text("x = 1\n")
    binary = tmp_path / "scx_cfg"
    binary.write_text("#!/bin/sh\n")
    kernel_dir = tmp_path / "k"
    kernel_dir.mkdir()
    (kernel_dir / "config").write_text("CONFIG_PREEMPT_RCU=y\n")
    from ktstr.kernel.cache import CachedKernel

    kernel = CachedKernel.model_validate({
        "key": "k", "version": "7.2.13", "release": "7.2.13+deb14-amd64", "source": "debian",
        "image": "vmlinuz", "config": "config", "image_sha256": "0" * 64, "sched_ext": True,
        "fetched_at": "2026-11-30T00:00:00Z", "entry_dir": kernel_dir})
    sched = Scheduler(name="scx_cfg", binary=SchedulerSpec.path(str(binary)),
                      config_file=str(cfg))
    files = CellFiles(binary, None, binary, binary, binary)
    cell = cell_guest_files(files, sched, kernel)
    run = guest_files(scheduler=sched, scheduler_binary=binary, kernel=kernel)
    arg = sched.merged_args()[1]
    assert arg == "/include-files/my.toml"
    for image in (cell, run):
        assert image.files[arg] == cfg
        assert image.files[KERNEL_CONFIG_GUEST] == kernel_dir / "config"
        assert arg in image.expected
    plan = cell_plan(files, sched, TCG, T1221, cell.expected)
    assert plan.scheduler.args[:2] == ["--config", arg]
    assert arg in plan.setup.expect_files


# -- 3. CI-matrix and reproducer commands reproduce their cell -----------------------------

DECL = '''
from ktstr import declare_scheduler
FILTERED = declare_scheduler(name="scx_filtered", binary="scx_simple", kernels=["7.2"])
WIDE = declare_scheduler(name="scx_wide", binary="scx_simple", kernels=["7.2..=7.3"])
'''


@pytest.fixture
def fake_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fetcher:
    archive = FakeArchive()
    archive.add("7.2.13-1", "sid", split_kernel_debs(tmp_path, "7.2.13+deb14-amd64", "7.2.13-1"))
    archive.add("7.3.4-1", "trixie-backports",
                split_kernel_debs(tmp_path, "7.3.4+deb13-amd64", "7.3.4-1"))
    fetcher = Fetcher(KernelCache(), archive)
    fetcher.fetch(KernelId.parse("7.2..=7.3"))
    monkeypatch.setattr("ktstr.sweep.kernels.Fetcher", lambda: fetcher)
    return fetcher


def _listed(ktstr: Callable[[list[str]], Ran], args: list[str]) -> list[dict[str, str]]:
    out = ktstr([*args, "--list", "--format", "json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("fmt", [MatrixFormat.GITHUB, MatrixFormat.GITLAB])
def test_every_matrix_command_lists_exactly_its_cell(
        tmp_path: Path, fmt: MatrixFormat, fake_kernels: Fetcher,
        ktstr: Callable[[list[str]], Ran]) -> None:
    decl = tmp_path / "decl.py"
    decl.write_text(DECL)
    base = ["-d", str(decl), "verifier", "--kernel", "7.2..=7.3", "--scheduler",
            "scx_filtered", "--scheduler", "scx_wide", "--preset", "tiny-1llc",
            "--preset", "smt-2llc"]
    cells = _listed(ktstr, base)
    assert {(c["scheduler"], c["kernel"]) for c in cells} == {
        ("scx_filtered", "7.2.13"), ("scx_wide", "7.2.13"), ("scx_wide", "7.3.4")}
    out = ktstr([*base, "--list", "--format", fmt.value])
    assert out.exit_code == 0, out.output
    if fmt is MatrixFormat.GITHUB:
        commands = [r["command"] for r in json.loads(out.stdout)["include"]]
    else:
        import yaml

        commands = [m["KTSTR_CELL_COMMAND"][0]
                    for m in yaml.safe_load(out.stdout)["parallel"]["matrix"]]
    assert len(commands) == len(cells) == 6
    for command, cell in zip(commands, cells, strict=True):
        argv = shlex.split(command)
        assert argv[0] == "ktstr"
        again = _listed(ktstr, argv[1:])
        assert [c["id"] for c in again] == [cell["id"]], command


def test_run_reproducer_lists_the_same_cell(ktstr: Callable[[list[str]], Ran]) -> None:
    from ktstr.declare.flags import FlagProfile
    from ktstr.schedulers.examples import SCX_SIMPLE

    stress = Payload(name="stress", kind=PayloadKind.binary("stress-ng"),
                     default_args=("--cpu", "1"))
    requests = [
        RunRequest(scheduler=SCX_SIMPLE, kernel="7.2", topology=T1221, duration_s=3),
        RunRequest(scheduler=SCX_SIMPLE, kernel="7.2", topology=T1221, duration_s=3,
                   workload=Workload.STRESS_NG, workers=2, extra_sched_args=("-v",),
                   flag_profile=FlagProfile(name="default")),
    ]
    for req in requests:
        line = req.reproducer("7.2.13")
        assert "--workload spin" not in line
        listed = ktstr([*shlex.split(line)[1:], "--list"])
        assert listed.exit_code == 0, listed.output
        assert json.loads(listed.stdout) == json.loads(json.dumps(req.cell("7.2.13")))
    del stress


# -- 4. max_imbalance_ratio is evaluated ----------------------------------------------------

STAT_BEGIN = """cpu  100 0 100 1000 0 0 0 0 0 0
cpu0 10 0 10 250 0 0 0 0 0 0
cpu1 10 0 10 250 0 0 0 0 0 0
cpu2 10 0 10 250 0 0 0 0 0 0
cpu3 10 0 10 250 0 0 0 0 0 0
intr 12345
"""
STAT_END = """cpu0 510 0 20 250 0 0 0 0 0 0
cpu1 505 0 20 260 0 5 5 0 0 0
cpu2 130 0 20 600 0 0 0 0 0 0
cpu3 150 0 15 600 0 0 0 0 0 0
"""


def test_imbalance_from_recorded_proc_stat() -> None:
    assert parse_cpu_stat(STAT_BEGIN) == {0: 20, 1: 20, 2: 20, 3: 20}
    busy = cpu_busy(STAT_BEGIN, STAT_END)
    assert busy == {0: 510, 1: 515, 2: 130, 3: 145}
    fail = check_imbalance(busy, [0, 1, 2, 3], 2.0)
    assert not fail[0].passed
    assert "CPU 1 busy 515 ticks vs CPU 2 130 ticks: ratio 3.96" in fail[0].detail
    assert check_imbalance(busy, [0, 1, 2, 3], 5.0)[0].passed
    assert check_imbalance(busy, [0, 1], 1.1)[0].passed  # only the CPUs the work could use


def test_imbalance_is_run_when_the_assert_sets_it() -> None:
    from ktstr.results.checks import IMBALANCE, run_checks

    busy = cpu_busy(STAT_BEGIN, STAT_END)
    names = [c.name for c in run_checks([], Assert(max_imbalance_ratio=2.0), busy=busy)]
    assert IMBALANCE in names
    assert IMBALANCE not in [c.name for c in run_checks([], Assert(), busy=busy)]
    assert imbalance_cpus([], [0, 1, 2]) == [0, 1, 2]


# -- 5. scheduler_alive, known_flags, uses_parent_pgrp --------------------------------------

def test_unknown_payload_flag_is_a_declaration_error() -> None:
    with pytest.raises(ValidationError, match=r"'--bogus' not in its known_flags; allowed: "
                                              r"--cpu, --timeout"):
        Payload(name="p", kind=PayloadKind.binary("stress-ng"), default_args=("--bogus",),
                known_flags=("--cpu", "--timeout"))
    ok = Payload(name="p", kind=PayloadKind.binary("stress-ng"),
                 default_args=("--cpu", "4", "--timeout=5s"), known_flags=("--cpu", "--timeout"))
    with pytest.raises(UserError, match=r"'-x' not in its known_flags"):
        RunRequest(scheduler=Scheduler.EEVDF, topology=T1221, payload=ok,
                   payload_args=("-x",))
    assert RunRequest(scheduler=Scheduler.EEVDF, topology=T1221, payload=ok,
                      payload_args=("--cpu", "-1")).payload_args == ("--cpu", "-1")


def test_unknown_payload_flag_on_the_command_line_exits_2(
        tmp_path: Path, ktstr: Callable[[list[str]], Ran]) -> None:
    decl = tmp_path / "pay.py"
    decl.write_text("from ktstr import declare_payload\n"
                    "P = declare_payload(name='pp', kind='true', known_flags=['--ok'])\n")
    out = ktstr(["-d", str(decl), "run", "--payload", "pp",
                                   "--payload-arg=--nope", "--list"])
    assert out.exit_code == 2, out.output
    assert "'--nope' not in its known_flags; allowed: --ok" in out.output


def _params(plan: RunPlan) -> dict[str, str]:
    """The plan's bounds and switches, by the names the shell init used to take."""
    return {
        "KTSTR_PAYLOAD_OWN_PGRP": "1" if plan.workload.own_pgrp else "0",
        "KTSTR_REQUIRE_ALIVE": "1" if plan.scheduler.require_alive else "0",
        "KTSTR_ATTACH_TIMEOUT_S": f"{plan.scheduler.attach_timeout_s:.0f}",
        "KTSTR_PAYLOAD_TIMEOUT_S": f"{plan.workload.timeout_s:.0f}",
    }


def test_uses_parent_pgrp_and_scheduler_alive_reach_the_guest() -> None:
    own = Payload(name="own", kind=PayloadKind.binary("true"))
    shared = own.model_copy(update={"uses_parent_pgrp": True})
    for payload, want in ((own, "1"), (shared, "0")):
        req = RunRequest(scheduler=Scheduler.EEVDF, topology=T1221, payload=payload)
        assert _params(guest_plan(req, TCG, [], None))["KTSTR_PAYLOAD_OWN_PGRP"] == want
    relaxed = Scheduler(name="r", assert_=Assert(scheduler_alive=False))
    for sched, want in ((Scheduler(name="s"), "1"), (relaxed, "0")):
        req = RunRequest(scheduler=sched, topology=T1221)
        assert _params(guest_plan(req, TCG, [], None))["KTSTR_REQUIRE_ALIVE"] == want


def _ev(name: str, t: float, **fields: str) -> Event:
    return Event(t="event", name=name, uptime_s=t, fields=fields)


EJECTED_MID_RUN = [
    _ev("sched_started", 1.0, pid="9"),
    _ev("sched_attached", 2.0, ops="qmap"),
    _ev("workload_started", 2.1),
    _ev("sched_detached", 4.0, state="disabled", phase="run"),
    _ev("sched_exited", 4.2, code="0", phase="run"),
    _ev("workload_stopped", 4.3, status="0", early="early"),
]
DMESG = 'sched_ext: BPF scheduler "qmap" disabled (scx_bpf_error)\n'


def _outcome(events: list[Event], **kw: object) -> BootOutcome:
    from ktstr.guest.protocol import Done

    return BootOutcome(vm_outcome=VmOutcome.OK, events=events,
                       blobs={"dmesg_sched_ext": DMESG}, done=Done(t="done", status=0),
                       **kw)  # type: ignore[arg-type]


def test_scheduler_alive_false_lets_an_ejection_pass_with_a_note() -> None:
    sched = Scheduler(name="scx_qmap")
    strict = RunRequest(scheduler=sched, topology=T1221)
    r = judge_run(strict, _outcome(EJECTED_MID_RUN), {"scheduler": "scx_qmap"}, TCG, 9.0)
    assert r.verdict is Verdict.FAIL and "ejected" in r.reasons[0]
    relaxed = strict.model_copy(update={"checks": Assert(scheduler_alive=False)})
    r = judge_run(relaxed, _outcome(EJECTED_MID_RUN), {"scheduler": "scx_qmap"}, TCG, 9.0)
    assert r.verdict is Verdict.PASS, r.reasons
    assert "allowed: scheduler_alive=False" in r.notes[0]
    assert r.timings.sched_run_s == pytest.approx(2.0)  # attach at 2.0, detached at 4.0
    assert r.timings.run_s == pytest.approx(2.2)


# -- 6. every field of the declarations is consumed -----------------------------------------
# (tests/unit/test_field_consumers.py)

# -- 7. setup failures are ERROR, not a pass ------------------------------------------------

def test_setup_failures_make_the_run_an_error_naming_what() -> None:
    events = [
        _ev("setup_failed", 1.0, what="sysctl", key="kernel.nope", value="1",
            error="no such sysctl (/proc/sys/kernel/nope does not exist)"),
        _ev("setup_failed", 1.0, what="cgroup_parent", key="/a/cgroup.procs/b", value="",
            error="mkdir: Not a directory"),
        _ev("setup_failed", 1.0, what="include_file", key="/include-files/x", value="",
            error="not a regular file in the guest"),
        _ev("setup_failed", 1.0, what="karg", key="", value="ktstr_bogus=1",
            error="Unknown kernel command line parameters (dmesg)"),
    ]
    lines = setup_errors(events)
    assert lines[0] == ("setup: sysctl kernel.nope=1 could not be applied: no such sysctl "
                        "(/proc/sys/kernel/nope does not exist)")
    assert "cgroup parent /a/cgroup.procs/b could not be created" in lines[1]
    assert "include file /include-files/x is not in the guest" in lines[2]
    assert "kernel rejected kernel argument(s) ktstr_bogus=1" in lines[3]
    req = RunRequest(scheduler=Scheduler(name="scx_simple"), topology=T1221)
    r = judge_run(req, _outcome(events), {"scheduler": "scx_simple"}, TCG, 5.0)
    assert r.verdict is Verdict.ERROR
    assert r.reasons == lines


# -- 8. the real error in the died reason ---------------------------------------------------

def test_died_reason_carries_the_libbpf_cause() -> None:
    log = ("libbpf: failed to open system Kconfig\n"
           "libbpf: failed to load object 'scx_central'\n"
           "libbpf: failed to load BPF skeleton 'scx_central': -22\n"
           "Failed to load skel\n")
    assert error_lines(log).startswith("libbpf: failed to open system Kconfig")
    j = judge_scheduler([_ev("sched_started", 1.0), _ev("sched_exited", 2.0, code="1")],
                        has_active_scheduling=True, sched_log=log)
    assert "failed to open system Kconfig" in j.reasons[0]
    assert "Failed to load skel" in j.reasons[0]


# -- 9. a payload declared by absolute path runs from where the image puts it ----------------

def test_absolute_payload_path_is_run_from_its_guest_place(tmp_path: Path) -> None:
    exe = tmp_path / "bench.sh"
    exe.write_text("#!/bin/sh\necho hi\n")
    exe.chmod(0o755)
    p = Payload(name="bench", kind=PayloadKind.binary(str(exe)))
    req = RunRequest(scheduler=Scheduler.EEVDF, topology=T1221, payload=p)
    argv = payload_argv(req)
    assert argv is not None and argv[0] == "/usr/bin/bench.sh" == payload_guest_path(p)
    placed = payload_files(p)
    assert {**placed.binaries, **placed.files}["/usr/bin/bench.sh"] == exe


# -- 10. the attach wait is scaled and the verdict says the bound ----------------------------

def test_attach_bound_is_scaled_and_named() -> None:
    req = RunRequest(scheduler=Scheduler(name="scx_simple"), topology=T1221)
    assert _params(guest_plan(req, TCG, [], None))["KTSTR_ATTACH_TIMEOUT_S"] == "60"
    assert _params(guest_plan(req, KVM, [], None))["KTSTR_ATTACH_TIMEOUT_S"] == "10"
    j = judge_scheduler([_ev("sched_started", 1.0),
                         _ev("sched_not_attached", 61.0, state="disabled", timeout_s="60")],
                        has_active_scheduling=True,
                        attach_bound=TCG.explain(10, T1221))
    assert "for 60 s (attach bound: 10 s scaled for TCG = 60 s" in j.reasons[0]


# -- 11. the emulator-fault retry ------------------------------------------------------------

def test_single_threaded_retry_gets_longer_guest_bounds() -> None:
    single = TCG.model_copy(update={"tcg_threading": TcgThreading.SINGLE})
    req = RunRequest(scheduler=Scheduler(name="s"), topology=T1221, payload=Payload(
        name="p", kind=PayloadKind.binary("true")), duration_s=5)
    multi_p = _params(guest_plan(req, TCG, [], None))
    single_p = _params(guest_plan(req, single, [], None))
    assert int(single_p["KTSTR_PAYLOAD_TIMEOUT_S"]) > int(multi_p["KTSTR_PAYLOAD_TIMEOUT_S"])
    assert int(single_p["KTSTR_ATTACH_TIMEOUT_S"]) > int(multi_p["KTSTR_ATTACH_TIMEOUT_S"])


def test_boot_retrying_rebuilds_the_initrd_for_the_retry(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    from ktstr.run import boot as boot_mod

    seen: list[TcgThreading] = []

    def fake_boot(**kw: object) -> BootOutcome:
        choice = kw["accel"]
        assert isinstance(choice, AccelChoice)
        if choice.tcg_threading is TcgThreading.MULTI:
            return BootOutcome(vm_outcome=VmOutcome.EMULATOR_FAULT,
                               detail="[ 3.1] Oops: int3 SMP", accel=choice)
        return BootOutcome(vm_outcome=VmOutcome.OK, accel=choice)

    monkeypatch.setattr(boot_mod, "boot", fake_boot)

    def make(choice: AccelChoice) -> tuple[Path, RunPlan]:
        seen.append(choice.tcg_threading)
        return tmp_path / "initrd", RunPlan(mode=Mode.EXEC, command="true")

    out = boot_mod.boot_retrying(make_initrd=make, kernel=tmp_path, cmdline=(), topology=T1221,
                                 accel=TCG, run_dir=tmp_path, work_timeout_s=1)
    assert seen == [TcgThreading.MULTI, TcgThreading.SINGLE]
    assert out.vm_outcome is VmOutcome.OK and "Oops: int3" in out.emulator_fault
    req = RunRequest(scheduler=Scheduler.EEVDF, topology=T1221)
    r = judge_run(req, _outcome([], emulator_fault=out.emulator_fault),
                  {"scheduler": "eevdf"}, TCG, 1.0)
    assert r.verdict is Verdict.PASS and "emulator fault" in r.notes[0]
    failed = judge_run(req, _outcome([], emulator_fault=out.emulator_fault).model_copy(
        update={"vm_outcome": VmOutcome.TIMEOUT, "detail": "no end"}),
        {"scheduler": "eevdf"}, TCG, 1.0)
    assert failed.verdict is Verdict.ERROR
    assert failed.reasons[0].startswith("retried after an emulator fault")


def test_int3_is_an_emulator_fault_only_under_tcg() -> None:
    line = "[   12.5] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"
    assert ConsoleParser(tcg=True).feed(line)[0].kind is ConsoleEventKind.EMULATOR_FAULT
    assert ConsoleParser(tcg=False).feed(line)[0].kind is ConsoleEventKind.OOPS


# -- 12. payload output is kept whole and shown on failure ----------------------------------

def test_payload_output_is_kept_whole_and_tailed(tmp_path: Path) -> None:
    big = "".join(f"line {i}\n" for i in range(500))
    outcome = _outcome([_ev("payload_exit", 3.0, status="1")]).model_copy(update={
        "blobs": {"payload_stdout": big, "payload_stderr": "boom: not found\n",
                  "sched_log": "log\n"}})
    keep_outputs(tmp_path, outcome)
    assert (tmp_path / "payload.stdout").read_text() == big
    assert (tmp_path / "payload.stderr").read_text() == "boom: not found\n"
    req = RunRequest(scheduler=Scheduler.EEVDF, topology=T1221,
                     payload=Payload(name="p", kind=PayloadKind.binary("true")))
    r = judge_run(req, outcome, {"scheduler": "eevdf", "workload": "payload p"}, TCG, 1.0)
    assert r.verdict is Verdict.FAIL
    assert r.stats["payload"]["stderr_tail"] == "boom: not found"
    assert r.stats["payload"]["stdout_tail"].endswith("line 499")
    from ktstr.results.report import print_result

    runner = CliRunner()
    import click

    @click.command()
    def show() -> None:
        print_result(r)

    text = runner.invoke(show).output
    assert "--- payload stderr (tail)" in text and "boom: not found" in text
    assert describe_workload(r).startswith("payload p (runs to its end")


# -- 14. -d takes a module in the current directory or a file path ---------------------------

def test_declarations_from_cwd_module_and_from_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        ktstr: Callable[[list[str]], Ran]) -> None:
    (tmp_path / "my_scheds_cwd.py").write_text(
        "from ktstr import declare_scheduler\n"
        "S = declare_scheduler(name='scx_from_cwd', binary='scx_simple')\n")
    monkeypatch.chdir(tmp_path)
    out = ktstr(["-d", "my_scheds_cwd", "list", "schedulers"])
    assert out.exit_code == 0, out.output
    assert "scx_from_cwd" in out.output
    (tmp_path / "other.py").write_text(
        "from ktstr import declare_scheduler\n"
        "S = declare_scheduler(name='scx_from_file', binary='scx_simple')\n")
    out = ktstr(["-d", "./other.py", "list", "schedulers"])
    assert out.exit_code == 0, out.output
    assert "scx_from_file" in out.output
    out = ktstr(["-d", "./missing.py", "list", "schedulers"])
    assert out.exit_code == 2 and "does not exist" in out.output


# -- 15. small: workload line, reproducer, the harness's own policy ---------------------------

def test_sysctl_keys_reach_the_guest_with_their_path() -> None:
    s = Scheduler(name="s", sysctls=[Sysctl("kernel.sched_autogroup_enabled", "0")])
    plan = guest_plan(RunRequest(scheduler=s, topology=T1221), TCG, [], None)
    (w,) = plan.setup.sysctls
    assert (w.key, w.path, w.value) == ("kernel.sched_autogroup_enabled",
                                        "/proc/sys/kernel/sched_autogroup_enabled", "0")


def test_blob_names_kept_as_files() -> None:
    from ktstr.run.execute import OUTPUT_FILES

    assert OUTPUT_FILES["payload_stdout"] == "payload.stdout"
    assert Blob  # the guest's blobs carry the outputs (ktstr.guest.protocol)


def test_a_qemu_crash_under_multi_threaded_tcg_is_retried_single_threaded(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CI saw QEMU 10 abort (exit -6) before hello under multi-threaded TCG: that is an
    emulator fault, retried like the int3 one, not a verdict about the scheduler."""
    from ktstr.run import boot as boot_mod
    from ktstr.vm.machine import qemu_exit_gone

    crash = qemu_exit_gone(-6, "qemu: assertion failed\n", "hello (boot)")

    def fake_boot(**kw: object) -> BootOutcome:
        choice = kw["accel"]
        assert isinstance(choice, AccelChoice)
        if choice.tcg_threading is TcgThreading.MULTI:
            return BootOutcome(vm_outcome=crash.kind, detail=crash.detail,
                               accel=choice)
        return BootOutcome(vm_outcome=VmOutcome.OK, accel=choice)

    monkeypatch.setattr(boot_mod, "boot", fake_boot)
    out = boot_mod.boot_retrying(
        make_initrd=lambda c: (tmp_path / "initrd", RunPlan(mode=Mode.EXEC, command="true")),
        kernel=tmp_path, cmdline=(), topology=T1221, accel=TCG, run_dir=tmp_path,
        work_timeout_s=1)
    assert out.vm_outcome is VmOutcome.OK and "SIGABRT" in out.emulator_fault


def test_the_boot_timer_check_failing_under_tcg_is_an_emulator_fault() -> None:
    """Seen under load in CI: the kernel's IO-APIC timer check panics when TCG delivers
    the timer interrupt late. Under TCG that is the emulator's timing (retried), under
    KVM it stays the guest's panic."""
    line = ("[    1.9] Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with "
            "apic=debug and send a report.")
    assert ConsoleParser(tcg=True).feed(line)[0].kind is ConsoleEventKind.EMULATOR_FAULT
    assert ConsoleParser(tcg=False).feed(line)[0].kind is ConsoleEventKind.PANIC
    other = "[    2.0] Kernel panic - not syncing: VFS: Unable to mount root fs"
    assert ConsoleParser(tcg=True).feed(other)[0].kind is ConsoleEventKind.PANIC
