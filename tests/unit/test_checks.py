"""Assert: ktstr's defaults as data and the merge chain default -> scheduler -> test."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktstr import NO_OVERRIDES, Assert, Scheduler


def test_defaults_as_data() -> None:
    d = Assert.default_checks()
    assert d.not_starved is True
    assert d.max_spread_pct == 15.0
    assert d.max_gap_ms == 2000.0
    assert d.isolation is False
    set_fields = set(d.model_dump(exclude_none=True))
    assert set_fields == {
        "not_starved",
        "max_spread_pct",
        "max_gap_ms",
        "isolation",
        "scheduler_alive",
    }
    unset = set(Assert.model_fields) - set_fields
    assert unset and all(getattr(d, name) is None for name in unset)


def test_no_overrides_sets_nothing() -> None:
    assert NO_OVERRIDES.model_dump(exclude_none=True) == {}
    assert Assert.chain(NO_OVERRIDES, NO_OVERRIDES) == Assert.default_checks()
    assert Assert.chain() == Assert.default_checks()


def test_later_layer_wins_for_what_it_sets() -> None:
    scheduler = Assert(max_spread_pct=30.0, max_imbalance_ratio=5.0)
    test = Assert(max_spread_pct=20.0, isolation=True)
    merged = Assert.chain(scheduler, test)
    assert merged.max_spread_pct == 20.0  # test over scheduler
    assert merged.max_imbalance_ratio == 5.0  # scheduler over default (unset)
    assert merged.isolation is True  # test over default
    assert merged.max_gap_ms == 2000.0  # default kept
    assert merged.not_starved is True


def test_a_layer_can_turn_a_default_off() -> None:
    assert Assert.chain(Assert(not_starved=False)).not_starved is False


def test_none_layers_are_skipped() -> None:
    assert Assert.chain(None, Assert(max_gap_ms=10), None).max_gap_ms == 10


def test_merge_is_pure() -> None:
    base = Assert.default_checks()
    merged = base.merge(Assert(max_gap_ms=1.0))
    assert base.max_gap_ms == 2000.0
    assert merged.max_gap_ms == 1.0
    assert base.merge(None) is base


def test_scheduler_layer_sits_between_defaults_and_test() -> None:
    relaxed = Scheduler(name="relaxed", assert_=Assert(max_imbalance_ratio=5.0))
    assert Scheduler(name="r2", **{"assert": {"max_imbalance_ratio": 5.0}}).assert_ == (
        relaxed.assert_
    )
    final = Assert.chain(relaxed.assert_, Assert(max_imbalance_ratio=3.0))
    assert final.max_imbalance_ratio == 3.0
    assert Assert.chain(relaxed.assert_, None).max_imbalance_ratio == 5.0
    assert relaxed.model_dump(by_alias=True)["assert"]["max_imbalance_ratio"] == 5.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_spread_pct", 101),
        ("max_spread_pct", -1),
        ("max_gap_ms", 0),
        ("max_imbalance_ratio", 0.5),
    ],
)
def test_thresholds_are_range_checked(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        Assert(**{field: value})


def test_unknown_check_is_rejected() -> None:
    with pytest.raises(ValidationError, match="max_spred_pct"):
        Assert(max_spred_pct=1)
