"""Scenario declarations, cpuset resolution and planning (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import ktstr
from ktstr.declare.topology import Topology
from ktstr.errors import UnknownNameError, UserError
from ktstr.guest.protocol import ScenarioWire
from ktstr.payloads.builtin import STRESS_NG
from ktstr.scenario import (
    CANNED,
    CgroupDef,
    CpusetSpec,
    Hold,
    Op,
    Scenario,
    SchedPolicy,
    Step,
    WorkType,
    canned_scenario,
    cpulist,
    plan_scenario,
    resolve_cpus,
)
from ktstr.scenario.cpuset import parse_cpulist
from ktstr.scenario.render import wire_plan
from ktstr.testing.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "scenario"
T1221 = Topology(1, 2, 2, 1)
T2421 = Topology(2, 4, 2, 1)  # 2 nodes, 4 LLCs, 8 CPUs


# --- cpusets ---------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "topo", "cpus"), [
    (CpusetSpec.llc(1), T1221, (2, 3)),
    (CpusetSpec.numa(1), T2421, (4, 5, 6, 7)),
    (CpusetSpec.range(0, 0.5), T2421, (0, 1, 2, 3)),
    (CpusetSpec.range(0.75, 1), T1221, (3,)),
    (CpusetSpec.range(0.9, 1), T1221, (3,)),  # at least one CPU
    (CpusetSpec.disjoint(0, 2), T1221, (0, 1)),
    (CpusetSpec.disjoint(2, 3), T2421, (5, 6, 7)),
    (CpusetSpec.overlap(0, 2, 0.5), T2421, (0, 1, 2, 3, 4, 5)),
    (CpusetSpec.overlap(1, 2, 0.5), T2421, (2, 3, 4, 5, 6, 7)),
    (CpusetSpec.exact([3, 1, 1]), T1221, (1, 3)),
])
def test_cpusets_resolve_against_the_topology(spec: CpusetSpec, topo: Topology,
                                              cpus: tuple[int, ...]) -> None:
    assert resolve_cpus(spec, topo) == cpus


def test_disjoint_parts_cover_every_cpu_once() -> None:
    for of in range(1, 9):
        parts = [resolve_cpus(CpusetSpec.disjoint(i, of), T2421) for i in range(of)]
        assert sorted(c for p in parts for c in p) == list(range(8))


@pytest.mark.parametrize(("spec", "words"), [
    (CpusetSpec.llc(2), "2 LLC(s)"),
    (CpusetSpec.numa(1), "1 NUMA node(s)"),
    (CpusetSpec.disjoint(0, 5), "into 5 parts"),
    (CpusetSpec.exact([4, 9]), "CPU(s) 4,9 do not exist"),
])
def test_impossible_cpusets_name_the_limit(spec: CpusetSpec, words: str) -> None:
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        resolve_cpus(spec, T1221)


def test_bad_cpuset_shapes_are_rejected() -> None:
    with pytest.raises(ValidationError, match="start < end"):
        CpusetSpec.range(0.5, 0.5)
    with pytest.raises(ValidationError, match="below of=2"):
        CpusetSpec.disjoint(2, 2)


def test_cpulist_round_trip() -> None:
    assert cpulist([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert parse_cpulist("0-2,5,7-8") == (0, 1, 2, 5, 7, 8)
    assert cpulist([]) == ""


# --- cgroups ---------------------------------------------------------------------------
def test_fluent_and_keyword_forms_build_the_same_frozen_value() -> None:
    fluent = (CgroupDef("cg_0").workers(2).work_type(WorkType.PIPE_IO)
              .cpuset(CpusetSpec.llc(0)).nice(5))
    keyword = CgroupDef("cg_0", workers=2, work_type=WorkType.PIPE_IO,
                        cpuset=CpusetSpec.llc(0), nice=5)
    assert fluent == keyword
    base = CgroupDef("cg_0")
    assert base.workers(3) is not base and base.num_workers is None
    with pytest.raises(ValidationError):
        base.name = "x"  # type: ignore[misc]
    assert fluent.model_dump(by_alias=True)["workers"] == 2


def test_cgroup_rules() -> None:
    with pytest.raises(ValidationError, match=r"needs a priority 1\.\.99"):
        CgroupDef("rt", sched_policy=SchedPolicy.FIFO)
    assert CgroupDef("rt").sched_policy(SchedPolicy.RR, 10).priority == 10
    with pytest.raises(ValidationError, match="only for fifo and rr"):
        CgroupDef("x", priority=3)
    with pytest.raises(ValidationError, match="no-internal-process"):
        CgroupDef("p", workers=2, children=[CgroupDef("c")])
    with pytest.raises(ValidationError, match="child names repeat"):
        CgroupDef("p").children(CgroupDef("c"), CgroupDef("c"))
    with pytest.raises(ValidationError, match="name"):
        CgroupDef("bad/name")


def test_scenario_names_are_exported_from_ktstr() -> None:
    for name in ("CgroupDef", "CpusetSpec", "Step", "Hold", "Op", "Scenario", "WorkType",
                 "SchedPolicy", "run_defs"):
        assert name in ktstr.__all__
        assert getattr(ktstr, name) is not None


def test_coerce_takes_defs_steps_or_a_scenario() -> None:
    defs = [CgroupDef("a"), CgroupDef("b")]
    s = Scenario.coerce(defs)
    assert len(s.steps) == 1 and s.steps[0].hold == Hold.frac(1.0)
    assert Scenario.coerce(s) is s
    assert Scenario.coerce([Step(hold=Hold.fixed(1))]).steps[0].hold.value == 1
    with pytest.raises(UserError, match="list of CgroupDef or a list of Step"):
        Scenario.coerce([CgroupDef("a"), Step(hold=Hold.fixed(1))])  # type: ignore[list-item]


def test_holds() -> None:
    assert Hold.frac(0.5).seconds(6) == 3
    assert Hold.fixed(2).seconds(6) == 2
    assert Hold.loop(0.5).seconds(6) is None and Hold.loop(0.5, 0.5).seconds(6) == 3
    with pytest.raises(ValidationError, match="fraction"):
        Hold.frac(2)
    with pytest.raises(ValidationError, match="must be the last step"):
        Scenario.from_steps([Step(hold=Hold.loop(1)), Step(hold=Hold.fixed(1))])


# --- planning --------------------------------------------------------------------------
def _steps() -> Scenario:
    return Scenario.from_steps([
        Step(ops=[Op.add_cgroup(CgroupDef("cg_0", workers=2, cpuset=CpusetSpec.disjoint(0, 2))),
                  Op.add_cgroup(CgroupDef("cg_1", workers=2, cpuset=CpusetSpec.disjoint(1, 2)))],
             hold=Hold.frac(0.4)),
        Step(ops=[Op.add_cgroup(CgroupDef("cg_2", workers=1, work_type=WorkType.FUTEX_PING_PONG)),
                  Op.set_cpuset("cg_0", CpusetSpec.range(0, 0.75)),
                  Op.set_cpuset("cg_1", CpusetSpec.range(0.75, 1)),
                  Op.run_payload(STRESS_NG, ["--cpu", "1", "--timeout", "1s"], id="s",
                                 cgroup="cg_2")],
             hold=Hold.frac(0.3)),
        Step(ops=[Op.remove_cgroup("cg_2"), Op.wait_payload("s", 5)], hold=Hold.fixed(0.5)),
        Step(ops=[Op.swap_cpusets("cg_0", "cg_1")], hold=Hold.loop(0.5)),
    ], name="golden_steps")


#: the ops the agent knows (ktstr/guest/native/scenario.c, run_op), with their arity
AGENT_OPS = {"scn_cg_add": 4, "scn_cg_cpus": 4, "scn_spawn": 9, "scn_stop": 3,
             "scn_cg_remove": 3, "scn_affinity": 4, "scn_move": 5, "scn_payload_run": None,
             "scn_payload_wait": 3, "scn_payload_kill": 2}


def _known_ops(wire: ScenarioWire) -> None:
    for step in wire.steps:
        for op in step.ops:
            assert op[0] in AGENT_OPS, op
            want = AGENT_OPS[op[0]]
            assert want is None or len(op) == want, op


def test_agent_knows_every_op_it_is_sent() -> None:
    src = (Path(__file__).parents[2] / "ktstr/guest/native/scenario.c").read_text()
    for name in AGENT_OPS:
        assert f'"{name}"' in src, name


def test_step_plan_tracks_cpusets_and_renders_valid_shell() -> None:
    plan = plan_scenario(_steps(), T1221, duration_s=5)
    cg = {c.name: c for c in plan.cgroups}
    assert cg["cg_0"].allowed_cpus == (0, 1, 2, 3)  # 0-1, then 0-2, then swapped 3
    assert cg["cg_1"].allowed_cpus == (0, 1, 2, 3)
    assert not cg["cg_2"].cpuset_ever and cg["cg_2"].workers == 1
    assert [s.hold_cs for s in plan.steps] == [200, 150, 50, 100]
    assert plan.steps[-1].loop_cs == 50
    wire = wire_plan(plan)
    _known_ops(wire)
    assert_golden(wire.model_dump_json(indent=1) + "\n", GOLDEN / "steps.json")


def test_defs_plan_golden() -> None:
    nested = CgroupDef("outer").children(
        CgroupDef("a", workers=1, sched_policy=SchedPolicy.RR, priority=5),
        CgroupDef("b", nice=-5, affinity=CpusetSpec.llc(1)))
    s = Scenario.from_defs([CgroupDef("cg_0", workers=3, cpuset=CpusetSpec.llc(0)), nested],
                           name="golden_defs")
    plan = plan_scenario(s, T1221, duration_s=4, default_workers=2)
    wire = wire_plan(plan)
    _known_ops(wire)
    assert_golden(wire.model_dump_json(indent=1) + "\n", GOLDEN / "defs.json")
    assert {c.name: c.workers for c in plan.cgroups} == {
        "cg_0": 3, "outer": 0, "outer/a": 1, "outer/b": 2}
    ops = [op for step in wire.steps for op in step.ops]
    assert ["scn_spawn", "c3", "outer/b", "2", "cpu_spin", "normal", "0", "-5", "2-3"] in ops


def test_a_moved_cgroup_may_run_where_its_destination_allowed() -> None:
    s = Scenario.from_steps([
        Step(ops=[Op.add_cgroup(CgroupDef("a", cpuset=CpusetSpec.exact([0]))),
                  Op.add_cgroup(CgroupDef("b", workers=0, cpuset=CpusetSpec.exact([3])))],
             hold=Hold.frac(0.5)),
        Step(ops=[Op.move_all_tasks("a", "b")], hold=Hold.frac(0.5)),
    ])
    cg = {c.name: c for c in plan_scenario(s, T1221, duration_s=2).cgroups}
    assert cg["a"].allowed_cpus == (0, 3) and cg["b"].allowed_cpus == (3,)


@pytest.mark.parametrize(("steps", "words"), [
    ([Step(ops=[Op.set_cpuset("nope", CpusetSpec.llc(0))], hold=Hold.frac(1))],
     "no cgroup 'nope' exists"),
    ([Step(ops=[Op.add_cgroup(CgroupDef("a")), Op.add_cgroup(CgroupDef("a"))],
           hold=Hold.frac(1))], "already exists"),
    ([Step(ops=[Op.add_cgroup(CgroupDef("a"))], hold=Hold.fixed(9))], "more than the run"),
    ([Step(ops=[Op.add_cgroup(CgroupDef("a"))], hold=Hold.loop(1))], "cannot repeat"),
    ([Step(ops=[Op.add_cgroup(CgroupDef("a", cpuset=CpusetSpec.llc(7)))], hold=Hold.frac(1))],
     r"step 1 op 1 .*LLC"),
    ([Step(ops=[Op.wait_payload("x")], hold=Hold.frac(1))], "no payload with id 'x'"),
    ([Step(hold=Hold.fixed(5)), Step(hold=Hold.loop(1))], "nothing is left"),
])
def test_plan_errors_name_the_step_and_the_fix(steps: list[Step], words: str) -> None:
    with pytest.raises(UserError, match=words):
        plan_scenario(Scenario.from_steps(steps), T1221, duration_s=5)


@pytest.mark.parametrize("topo", [Topology(1, 1, 2, 1), T1221, Topology(1, 2, 2, 2), T2421],
                         ids=lambda t: t.label)
def test_every_canned_scenario_plans_and_renders(topo: Topology) -> None:
    assert len(CANNED) >= 12
    for name in CANNED:
        s = canned_scenario(name, topo)
        assert s.name == name and s.canned
        plan = plan_scenario(s, topo, duration_s=5)
        assert abs(plan.total_s - 5) < 0.05, name
        _known_ops(wire_plan(plan))


def test_a_canned_cpuset_scenario_on_one_cpu_says_why_it_cannot_run() -> None:
    one = Topology(1, 1, 1, 1)
    with pytest.raises(UserError, match="cannot split 1 CPUs"):
        plan_scenario(canned_scenario("cpuset_apply", one), one, duration_s=5)


def test_unknown_canned_scenario_lists_the_names() -> None:
    with pytest.raises(UnknownNameError, match="steady_llc"):
        canned_scenario("steady_lc", T1221)
