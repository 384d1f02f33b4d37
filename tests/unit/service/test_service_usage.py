"""Usage arithmetic over job and lease intervals (pure)."""

from __future__ import annotations

import pytest

from ktstr.service.usage import By, Interval, busy_share, clip, union_length, usage_report

SUTS = {"a": "demo", "b": "demo", "c": "other"}


def iv(sut: str, start: float, end: float | None, *, user: str = "u", job: bool = True,
       failed: bool = False) -> Interval:
    return Interval(sut=sut, sutclass=SUTS[sut], user=user, start=start, end=end,
                    is_job=job, failed=failed)


def test_clip_and_union() -> None:
    assert clip(0, 10, 5, 20, 100) == (5, 10)
    assert clip(0, None, 5, 20, 12) == (5, 12)  # still running: up to now
    assert clip(0, 4, 5, 20, 100) is None
    assert union_length([(0, 10), (5, 15), (20, 25)]) == 20
    assert union_length([]) == 0


def test_busy_share_is_bounded() -> None:
    assert busy_share([(0, 50)], 1, 0, 100, 100) == pytest.approx(0.5)
    assert busy_share([(0, 50), (50, 100)], 2, 0, 100, 100) == pytest.approx(0.5)
    assert busy_share([(0, 100), (0, 100)], 1, 0, 100, 100) == 1.0
    assert busy_share([(0, 10)], 1, 10, 10, 100) == 0.0


def test_report_by_sut_merges_overlaps_and_counts_failures() -> None:
    intervals = [iv("a", 0, 40), iv("a", 20, 60, failed=True), iv("a", 60, 80, job=False),
                 iv("b", 90, None), iv("c", -50, -10)]
    rows = {r.key: r for r in usage_report(intervals, SUTS, By.SUT, 0, 100, 95)}
    assert rows["a"].busy == pytest.approx(0.8)  # 0-60 merged plus the 60-80 lease
    assert (rows["a"].jobs, rows["a"].failed_jobs, rows["a"].leases) == (2, 1, 1)
    assert rows["a"].failure_rate == pytest.approx(0.5)
    assert rows["b"].busy == pytest.approx(0.05)  # running until now=95
    assert rows["c"].busy == 0 and rows["c"].jobs == 0 and rows["c"].failure_rate is None
    assert [r.key for r in usage_report(intervals, SUTS, By.SUT, 0, 100, 95)] == ["a", "b", "c"]


def test_report_by_class_and_user() -> None:
    intervals = [iv("a", 0, 100, user="x"), iv("b", 0, 50, user="y", failed=True)]
    by_class = {r.key: r for r in usage_report(intervals, SUTS, By.SUTCLASS, 0, 100, 100)}
    assert by_class["demo"].suts == 2 and by_class["demo"].busy == pytest.approx(0.75)
    assert by_class["other"].busy == 0
    by_user = {r.key: r for r in usage_report(intervals, SUTS, By.USER, 0, 100, 100)}
    assert by_user["x"].busy == pytest.approx(100 / 300)  # share of the whole pool
    assert by_user["y"].failure_rate == 1.0
