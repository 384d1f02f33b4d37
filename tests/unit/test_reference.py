"""docs/reference.md is generated from the models and must match them."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from ktstr import Payload, Scheduler
from ktstr.declare.reference import MODELS, render_reference

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"


def test_committed_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render_reference(), (
        "docs/reference.md is stale: run python scripts/gen_reference.py"
    )


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_documented_field_has_a_description(model: type) -> None:
    undocumented = [n for n, f in model.model_fields.items() if not f.description]
    assert undocumented == []


def test_reference_lists_every_scheduler_and_payload_field() -> None:
    text = render_reference()
    for model in (Scheduler, Payload):
        section = text.split(f"## {model.__name__}\n", 1)[1].split("\n## ", 1)[0]
        for name in model.model_fields:
            assert f"`{name}`" in section, name
    assert "| `assert` / `assert_` | Assert |" in text
    assert "| `topology` | Topology | `Topology()` |" in text


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = runpy.run_path(str(ROOT / "scripts" / "gen_reference.py"))
    stale = tmp_path / "reference.md"
    stale.write_text("old\n", encoding="utf-8")
    monkeypatch.setitem(script["main"].__globals__, "REFERENCE", stale)
    assert script["main"](["--check"]) == 1
    assert "is stale" in capsys.readouterr().err
    assert script["main"]([]) == 0
    assert stale.read_text(encoding="utf-8") == render_reference()
    assert script["main"](["--check"]) == 0


def test_compare_doc_lists_every_metric_family() -> None:
    from ktstr.results.metricdefs import default_metrics, with_metrics_table

    text = (ROOT / "docs" / "compare.md").read_text(encoding="utf-8")
    assert text == with_metrics_table(text), (
        "docs/compare.md's metric table is stale: run python scripts/gen_reference.py")
    for d in default_metrics():
        assert f"`{d.template}`" in text, d.key
