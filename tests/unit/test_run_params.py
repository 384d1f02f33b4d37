"""The per-run files the guest init reads, and the init template itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ktstr.declare.scheduler import EEVDF, Scheduler
from ktstr.declare.spec import SchedulerSpec
from ktstr.image.testing import assert_golden, check_shell_syntax
from ktstr.run.image import init_script
from ktstr.run.params import args_file, params_sh, run_files, sysctls_file

GOLDEN = Path(__file__).parent / "golden" / "initramfs"


def test_init_template_golden_and_valid_shell() -> None:
    script = init_script()
    assert_golden(script, GOLDEN / "init.sh")
    check_shell_syntax(script)


def test_params_are_shell_quoted_and_source_back() -> None:
    text = params_sh({"A": "it's $HOME", "B": 3})
    out = subprocess.run(["busybox", "sh", "-c", text + 'printf "%s|%s" "$A" "$B"'],
                         capture_output=True, text=True, check=True).stdout
    assert out == "it's $HOME|3"


def test_args_keep_spaces_one_per_line_and_reject_newlines() -> None:
    assert args_file(["--a", "b c"]) == "--a\nb c\n"
    try:
        args_file(["x\ny"])
    except ValueError as exc:
        assert "newline" in str(exc)
    else:
        raise AssertionError("newline accepted")


def test_sysctls_in_order_as_proc_paths() -> None:
    s = Scheduler(name="x", sysctls=[("kernel.a", "1"), ("kernel.a", "2")])
    assert sysctls_file(s.sysctls) == "/proc/sys/kernel/a 1\n/proc/sys/kernel/a 2\n"


def test_run_files_for_binary_scheduler_with_cgroup_parent() -> None:
    s = Scheduler(name="scx_simple", cgroup_parent="/ktstr", sched_args=["-v"])
    files = run_files(mode="run", scheduler=s, sched_args=s.merged_args(), workload="spin",
                      workers=4, duration_s=5, attach_timeout_s=10, stop_timeout_s=5)
    params = files["/ktstr/params.sh"].decode()
    assert "KTSTR_SCHED_KIND=binary" in params
    assert "KTSTR_SCHED_BIN=/sched/scx_simple" in params
    assert "KTSTR_CGROUP_PARENT=/ktstr" in params
    assert files["/ktstr/sched_args"] == b"--cell-parent-cgroup\n/ktstr\n-v\n"


def test_run_files_for_eevdf_and_builtin() -> None:
    files = run_files(mode="run", scheduler=EEVDF, sched_args=[], workload="none", workers=0,
                      duration_s=1, attach_timeout_s=1, stop_timeout_s=1)
    assert "KTSTR_SCHED_KIND=eevdf" in files["/ktstr/params.sh"].decode()
    b = Scheduler(name="minlat", binary=SchedulerSpec.kernel_builtin(
        enable=["echo minlat > /x"], disable=["echo none > /x"]))
    files = run_files(mode="run", scheduler=b, sched_args=[], workload="spin", workers=1,
                      duration_s=1, attach_timeout_s=1, stop_timeout_s=1)
    assert files["/ktstr/enable.sh"] == b"echo minlat > /x\n"
    assert files["/ktstr/disable.sh"] == b"echo none > /x\n"


def test_inline_config_lands_at_its_guest_path() -> None:
    s = Scheduler(name="cfg", config_file_def=("--config={file}", "/include-files/c.json"))
    files = run_files(mode="run", scheduler=s, sched_args=s.merged_args(inline_config=True),
                      workload="spin", workers=1, duration_s=1, attach_timeout_s=1,
                      stop_timeout_s=1, inline_config='{"a": 1}')
    assert files["/include-files/c.json"] == b'{"a": 1}'
    assert files["/ktstr/sched_args"] == b"--config=/include-files/c.json\n"
