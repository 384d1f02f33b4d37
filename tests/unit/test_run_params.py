"""The run plan the guest agent receives, and the init template itself."""

from __future__ import annotations

from pathlib import Path

from ktstr.declare.scheduler import EEVDF, Scheduler
from ktstr.declare.spec import SchedulerSpec
from ktstr.guest.protocol import Mode, RunPlan, SchedKind, WorkloadKind
from ktstr.run.image import init_script
from ktstr.run.params import exec_plan, run_plan, scheduler_segment, shell_plan, sysctl_writes
from ktstr.testing.golden import assert_golden, check_shell_syntax

GOLDEN = Path(__file__).parent / "golden" / "initramfs"


def test_init_template_golden_and_valid_shell() -> None:
    script = init_script()
    assert_golden(script, GOLDEN / "init.sh")
    check_shell_syntax(script)
    assert len(script.splitlines()) <= 60


def test_sysctls_in_order_with_their_keys_and_paths() -> None:
    s = Scheduler(name="x", sysctls=[("kernel.a", "1"), ("kernel.a", "2")])
    writes = sysctl_writes(s.sysctls)
    assert [(w.key, w.path, w.value) for w in writes] == [
        ("kernel.a", "/proc/sys/kernel/a", "1"), ("kernel.a", "/proc/sys/kernel/a", "2")]


def test_run_plan_for_binary_scheduler_with_cgroup_parent() -> None:
    s = Scheduler(name="scx_simple", cgroup_parent="/ktstr", sched_args=["-v", "a b"])
    plan = run_plan(scheduler=s, sched_args=s.merged_args(), workload="spin", workers=4,
                    duration_s=5, attach_timeout_s=10, stop_timeout_s=5)
    assert plan.mode is Mode.RUN and plan.harness_rt
    assert plan.scheduler.kind is SchedKind.BINARY
    assert plan.scheduler.path == "/sched/scx_simple"
    assert plan.scheduler.args == ["--cell-parent-cgroup", "/ktstr", "-v", "a b"]
    assert plan.setup.cgroup_parent == "/ktstr"
    assert plan.workload.kind is WorkloadKind.SPIN and plan.workload.workers == 4
    # the plan survives the wire unchanged
    assert RunPlan.model_validate_json(plan.line()) == plan


def test_run_plan_for_eevdf_and_builtin() -> None:
    plan = run_plan(scheduler=EEVDF, sched_args=[], workload="none", workers=0, duration_s=1,
                    attach_timeout_s=1, stop_timeout_s=1)
    assert plan.scheduler.kind is SchedKind.NONE
    b = Scheduler(name="minlat", binary=SchedulerSpec.kernel_builtin(
        enable=["echo minlat > /x"], disable=["echo none > /x"]))
    plan = run_plan(scheduler=b, sched_args=[], workload="spin", workers=1, duration_s=1,
                    attach_timeout_s=1, stop_timeout_s=1)
    assert plan.scheduler.kind is SchedKind.BUILTIN
    assert (plan.scheduler.enable, plan.scheduler.disable) == (["echo minlat > /x"],
                                                               ["echo none > /x"])


def test_inline_config_lands_at_its_guest_path() -> None:
    s = Scheduler(name="cfg", config_file_def=("--config={file}", "/include-files/c.json"))
    assert scheduler_segment(s, inline_config='{"a": 1}') == {
        "/include-files/c.json": b'{"a": 1}'}
    assert s.merged_args(inline_config=True) == ["--config=/include-files/c.json"]


def test_exec_and_shell_plans() -> None:
    assert exec_plan("echo 'x'").command == "echo 'x'"
    assert shell_plan().mode is Mode.SHELL
