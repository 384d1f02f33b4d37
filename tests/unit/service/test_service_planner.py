"""The pure planner: plan documents -> jobs, and errors naming the field path."""

from __future__ import annotations

from typing import Any

import pytest

from ktstr.contract import CellKind
from ktstr.service.plan import format_duration, parse_duration
from ktstr.service.planner import PlanError, expand, parse_plan

CLASSES = {"demo", "other"}


def doc(**run: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kernels": ["7.2"], "schedulers": ["scx_a"],
                            "topologies": ["1,2,2,1"]}
    base.update(run)
    return {"sut": {"sutclass": "demo"}, "runs": [base]}


def problems(document: Any, classes: set[str] = CLASSES) -> list[str]:
    with pytest.raises(PlanError) as err:
        expand(parse_plan(document), classes)
    return err.value.problems


def test_cross_product_with_repeats() -> None:
    d = doc(kernels=["7.2", "7.3"], schedulers=["a", "b"], topologies=["1,1,2,1"],
            presets=["tiny-2llc"], tests=["t1", "t2", "t3"], repeats=2)
    cells = expand(parse_plan(d), CLASSES)
    assert len(cells) == 2 * 2 * 2 * 3 * 2
    first = cells[0]
    assert (first.kernel, first.scheduler, first.topology, first.test, first.repeat) == \
        ("7.2", "a", "1,1,2,1", "t1", 0)
    assert cells[1].repeat == 1 and cells[1].key == first.key  # repeats share a cell key
    preset_cell = next(c for c in cells if c.preset)
    assert preset_cell.preset == "tiny-2llc" and preset_cell.topology_label == "1n2l2c1t"


def test_defaults_and_overrides() -> None:
    d = doc(timeout="90s")
    d["defaults"] = {"timeout": "1h", "repeats": 3, "duration": "30s"}
    d["runs"].append({"kernels": ["7.2"], "schedulers": ["x"], "topologies": ["1n1l2c1t"]})
    cells = expand(parse_plan(d), CLASSES)
    assert [c.timeout_s for c in cells] == [90.0] * 3 + [3600.0] * 3
    assert {c.duration_s for c in cells} == {30.0}


def test_verifier_cells() -> None:
    cells = expand(parse_plan(doc(verifier=True)), CLASSES)
    assert [c.kind for c in cells] == [CellKind.VERIFIER] and cells[0].test is None


@pytest.mark.parametrize(("change", "expected"), [
    ({"topologies": ["1,2,2"]}, "runs[0].topologies[0]: bad topology '1,2,2'"),
    ({"topologies": ["2,3,2,1"]}, "runs[0].topologies[0]:"),
    ({"presets": ["nope"]}, "runs[0].presets[0]: unknown preset 'nope'; known presets:"),
    ({"kernels": ["7.2", "git+x"]}, "runs[0].kernels[1]: bad git kernel spec"),
    ({"topologies": []}, "runs[0]: give at least one of topologies or presets"),
    ({"duration": "2m", "timeout": "1m"}, "runs[0].duration: 120s is longer than the timeout"),
])
def test_run_errors_name_the_field(change: dict[str, Any], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(doc(**change))), problems(doc(**change))


@pytest.mark.parametrize(("document", "expected"), [
    ({"runs": []}, "sut: is required"),
    (doc(tests=["a"], verifier=True), "runs[0]: "),
    (doc(timeout="soon"), "runs[0].timeout"),
    (doc(repeats=0), "runs[0].repeats"),
    ({**doc(), "bogus": 1}, "bogus: "),
    ([1, 2], "(plan): expected a mapping"),
])
def test_schema_errors_name_the_field(document: Any, expected: str) -> None:
    with pytest.raises(PlanError) as err:
        parse_plan(document)
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_unknown_sutclass_lists_known() -> None:
    d = doc()
    d["sut"]["sutclass"] = "gpu"
    assert problems(d) == ["sut.sutclass: unknown SUT class 'gpu'; known: demo, other"]


def test_all_problems_reported_at_once() -> None:
    d = doc(topologies=["bad"], presets=["nope"])
    d["sut"]["sutclass"] = "gpu"
    assert len(problems(d)) == 3


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), (90, 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5),
    ("2h", 7200), (" 1m 30s ", 90),
])
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "-5", "5x", True, None, "m"])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59, 90, 3600, 5400)] == \
        ["0s", "59s", "1m30s", "1h", "1h30m"]


def test_plan_schema_doc_is_current() -> None:
    from pathlib import Path

    from ktstr.service.plan import render_plan_schema

    path = Path(__file__).parents[3] / "docs" / "plan.schema.json"
    assert path.read_text() == render_plan_schema(), (
        "docs/plan.schema.json is stale: run `.venv/bin/python -m ktstr.service.plan > "
        "docs/plan.schema.json`")
