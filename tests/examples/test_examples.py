"""Examples to copy: ordinary pytest tests that boot real kernels through ktstr.

Run them with ``ktstr test tests/examples`` (or plain pytest: the plugin is installed
with ktstr). Add ``--ktstr-gauntlet`` to expand each over presets x flag profiles.
"""

from __future__ import annotations

from ktstr import CgroupDef, CpusetSpec, Ctx, MetricCheck, ktstr_test
from ktstr.payloads.builtin import STRESS_NG
from ktstr.schedulers.examples import SCX_QMAP, SCX_SIMPLE


@ktstr_test(llcs=2, cores=2, duration_s=4)
def test_eevdf_two_cgroups(ctx: Ctx) -> None:
    result = ctx.run([CgroupDef("cg_0").workers(2), CgroupDef("cg_1").workers(2)])
    # per-cgroup stats come back with the result: a custom fairness assertion
    for name in ("cg_0", "cg_1"):
        assert result.stats["scenario"]["cgroups"][name]["spread_pct"] < 15


@ktstr_test(scheduler=SCX_SIMPLE, llcs=2, cores=2, duration_s=4, isolation=True)
def test_scx_simple_disjoint_cpusets(ctx: Ctx) -> None:
    ctx.run([CgroupDef("left").workers(2).cpuset(CpusetSpec.disjoint(0, 2)),
             CgroupDef("right").workers(2).cpuset(CpusetSpec.disjoint(1, 2))])


@ktstr_test(scheduler=SCX_SIMPLE, llcs=2, cores=2, duration_s=4)
def test_scx_simple_under_stress_ng(ctx: Ctx) -> None:
    result = ctx.payload(STRESS_NG).args("--cpu", "4", "--timeout", "3s").checks(
        MetricCheck.min("bogo_ops", 1)).run()
    # the body runs on the host: assert on anything the run returned
    assert result.sched_ops == "simple"
    assert result.stats["payload"]["metrics"]["cpu.bogo_ops"] > 0


@ktstr_test(llcs=1, cores=2, duration_s=3)
def test_eevdf_default_workload(ctx: Ctx) -> None:
    result = ctx.run()
    assert result.topology_diff == []


@ktstr_test(scheduler=SCX_SIMPLE, cores=2, llcs=1, max_cpus=4, duration_s=3)
def test_gauntlet_over_tiny_presets(ctx: Ctx) -> None:
    """With --ktstr-gauntlet this expands to every preset of at most 4 CPUs."""
    ctx.run()


@ktstr_test(scheduler=SCX_QMAP, extra_sched_args=["-e", "100"], duration_s=6, expect_err=True)
def test_qmap_error_injection_is_caught(ctx: Ctx) -> None:
    """A negative test: scx_qmap told to fail after 100 enqueues must be ejected."""
    result = ctx.run()
    assert result.ejection_reason == "scx_bpf_error"
