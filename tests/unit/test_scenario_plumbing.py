"""How a scenario reaches the run layer and the CLI (no VM)."""

from __future__ import annotations

import json

import pytest

from ktstr import EEVDF, Assert, CgroupDef, Topology
from ktstr.cli import main
from ktstr.declare.scheduler import Scheduler
from ktstr.guest.native import AGENT_GUEST_PATH
from ktstr.run.image import image_spec
from ktstr.run.params import run_plan
from ktstr.run.request import RunRequest
from ktstr.scenario import Scenario, canned_scenario, request_fields
from ktstr.scenario.runner import checks_for, plan_for, scenario_wire

T = Topology(1, 2, 2, 1)


def _request(**kw: object) -> RunRequest:
    return RunRequest(scheduler=EEVDF, topology=T, duration_s=4, **kw)  # type: ignore[arg-type]


def test_the_scenario_rides_in_the_run_plan() -> None:
    req = _request(**request_fields([CgroupDef("cg_0").workers(3)]))
    wire = scenario_wire(req)
    assert wire is not None
    assert ["scn_spawn", "c0", "cg_0", "3", "cpu_spin", "normal", "0", "0", ""] in \
        wire.steps[0].ops
    plan = run_plan(scheduler=EEVDF, sched_args=[], workload="spin", workers=4,
                    duration_s=4, attach_timeout_s=10, stop_timeout_s=5, scenario=wire)
    assert plan.scenario == wire
    assert scenario_wire(_request()) is None


def test_root_is_the_scheduler_cgroup_parent_and_workers_default_to_the_request() -> None:
    sched = Scheduler(name="s", binary="scx_s", cgroup_parent="/sched/cells")
    req = RunRequest(scheduler=sched, topology=T, workers=3,
                     scenario=Scenario.from_defs([CgroupDef("a")]))
    plan = plan_for(req)
    assert plan.root == "/sched/cells" and plan.cgroups[0].workers == 3


def test_the_agent_with_its_worker_is_in_every_image() -> None:
    spec = image_spec()
    assert spec.binaries[AGENT_GUEST_PATH].name == "ktstr-agent"


def test_checks_merge_defaults_scheduler_then_request() -> None:
    sched = Scheduler(name="s", binary="scx_s", assert_=Assert(max_spread_pct=30,
                                                                max_gap_ms=500))
    req = RunRequest(scheduler=sched, topology=T, checks=Assert(max_gap_ms=900))
    merged = checks_for(req)
    assert (merged.max_spread_pct, merged.max_gap_ms, merged.not_starved) == (30, 900, True)
    assert "checks" not in request_fields([CgroupDef("a")], checks=Assert())
    assert request_fields([CgroupDef("a")], checks=Assert(isolation=True))["checks"].isolation


def test_reproducer_names_canned_scenarios_and_flags_custom_ones() -> None:
    canned = _request(scenario=canned_scenario("cgroup_add", T))
    assert canned.reproducer("7.2.13").endswith("--scenario cgroup_add")
    custom = _request(scenario=Scenario.from_defs([CgroupDef("a")]))
    assert "declared in code" in custom.reproducer("7.2.13")


def test_cli_lists_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["list", "scenarios", "--json", "--topology", "1,2,2,1"])
    assert info.value.code in (0, None)
    data = json.loads(capsys.readouterr().out)
    by_name = {d["name"]: d for d in data}
    assert len(by_name) >= 12
    assert by_name["steady_llc"]["steps"][0]["ops"] == [
        "add_cgroup llc_0 2xcpu_spin cpuset=llc(0)", "add_cgroup llc_1 2xcpu_spin cpuset=llc(1)"]
    with pytest.raises(SystemExit) as info:
        main(["list", "scenarios"])
    assert "cpuset_resize" in capsys.readouterr().out


def test_cli_run_rejects_an_unknown_scenario_before_booting(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--scenario", "stedy", "--topology", "1,2,2,1"])
    assert info.value.code == 2
    assert "unknown scenario 'stedy'; known scenarios: " in capsys.readouterr().err


def test_payload_ops_are_judged_by_their_declared_checks() -> None:
    from ktstr.guest.protocol import Event
    from ktstr.payloads.builtin import HACKBENCH, STRESS_NG
    from ktstr.scenario import Hold, Op, Step
    from ktstr.scenario.runner import payload_outcomes

    s = Scenario.from_steps([
        Step(ops=[Op.add_cgroup(CgroupDef("a")),
                  Op.run_payload(HACKBENCH, id="hb", cgroup="a"),
                  Op.run_payload(STRESS_NG, ["--cpu", "1"], id="sn")], hold=Hold.frac(0.5)),
        Step(ops=[Op.wait_payload("hb"), Op.kill_payload("sn")], hold=Hold.frac(0.5)),
    ])

    def ev(**fields: str) -> Event:
        return Event(t="event", name="scn_payload_exit", uptime_s=1.0, fields=fields)

    checks, stats = payload_outcomes(
        s, [ev(id="hb", status="0", how="exited"), ev(id="sn", status="143", how="killed")],
        {"payload_hb": "Running...\nTime: 0.512\n"})
    assert [(c.name, c.passed) for c in checks] == [("payload hb: exit code == 0", True)]
    assert stats["hb"]["metrics"] == {"time_s": 0.512} and stats["sn"]["how"] == "killed"
    bad, _ = payload_outcomes(s, [ev(id="hb", status="1", how="timeout")], {})
    assert [(c.name, c.passed) for c in bad] == [("payload hb", False),
                                                  ("payload hb: exit code == 0", False)]
