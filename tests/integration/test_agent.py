"""ktstr-agent in a real guest: lossless text, valid messages, what the guest side costs.

Kernel 7.2.13 under QEMU (TCG here); the example scheduler scx_simple.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr import CgroupDef, Payload, PayloadKind, Topology, run_defs
from ktstr.declare.topology import Topology as T
from ktstr.image import builder
from ktstr.kernel.resolve import resolve_kernel
from ktstr.results.model import Verdict, VmOutcome
from ktstr.run.boot import boot
from ktstr.run.execute import run_scheduler
from ktstr.run.image import image_spec
from ktstr.run.params import exec_plan
from ktstr.run.request import RunRequest, Workload
from ktstr.schedulers.examples import SCX_SIMPLE
from ktstr.vm.argv import kernel_cmdline
from ktstr.vm.host import AccelRequest, choose_accel, find_qemu

pytestmark = pytest.mark.vm

TRICKY = (b'q"uote \\back\\slash\n\ttab \\n literal \xc3\xa9t\xc3\xa9 \xe2\x82\xac \x01\x7f'
          b" \xff\xfe invalid\n")


def test_text_with_any_bytes_comes_back_byte_for_byte(tmp_path: Path) -> None:
    octal = "".join(f"\\{b:03o}" for b in TRICKY)
    kernel = resolve_kernel("7.2")
    initrd = builder.compose(builder.build_base(image_spec()), builder.run_segment({}),
                             tmp_path / "initrd.img")
    out = boot(kernel=kernel.image_path, image=initrd,
               plan=exec_plan(f"printf '{octal}'; printf '{octal}' >&2"),
               cmdline=kernel_cmdline(), topology=T(1, 1, 1, 1),
               accel=choose_accel(AccelRequest.AUTO, find_qemu()), run_dir=tmp_path,
               work_timeout_s=60, expect_exec=True)
    assert out.vm_outcome is VmOutcome.OK, out.detail + out.console_tail
    assert out.exec_result is not None
    assert out.exec_result.stdout.encode("utf-8", "surrogateescape") == TRICKY
    assert out.exec_result.stderr.encode("utf-8", "surrogateescape") == TRICKY
    assert out.bad_messages == []


def test_a_scheduler_run_with_a_payload_and_a_scenario_sends_only_valid_messages() -> None:
    """Every event, blob and result of a run validates (EventName is the vocabulary),
    and a scheduler's log line with quotes and backslashes arrives unaltered."""
    quoted = Payload(name="quoted", kind=PayloadKind.binary("sh"),
                     default_args=("-c", 'echo "say \\"hi\\" \\\\ back"'))
    req = RunRequest(scheduler=SCX_SIMPLE, kernel="7.2", topology=Topology(1, 1, 2, 1),
                     duration_s=2, payload=quoted)
    r = run_scheduler(req)
    assert r.verdict is Verdict.PASS, r.reasons
    assert r.stats["payload"]["stdout_tail"] == 'say "hi" \\ back'
    s = run_defs(req.model_copy(update={"payload": None, "workload": Workload.SPIN,
                                        "duration_s": 3}),
                 [CgroupDef("cg_0").workers(2)])
    assert s.verdict is Verdict.PASS, s.reasons
    names = {e.name for e in s.timeline}
    assert {"harness_rt", "sched_attached", "scenario_begin", "scn_spawned",
            "scenario_end"} <= names
