"""SchedulerSpec variants and the built-in EEVDF scheduler."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktstr import EEVDF, Scheduler, SchedulerSpec
from ktstr.declare import SpecKind


def test_eevdf() -> None:
    spec = SchedulerSpec.EEVDF
    assert spec.kind is SpecKind.EEVDF
    assert not spec.has_active_scheduling
    assert not spec.has_binary
    assert spec.binary_name is None
    assert "EEVDF" in spec.describe()


def test_discover() -> None:
    spec = SchedulerSpec.discover("scx_simple")
    assert (spec.kind, spec.name) == (SpecKind.DISCOVER, "scx_simple")
    assert spec.has_active_scheduling and spec.has_binary
    assert spec.binary_name == "scx_simple"
    assert spec.describe() == "discover(scx_simple)"


def test_path() -> None:
    spec = SchedulerSpec.path("/opt/scx/bin/scx_lavd")
    assert spec.kind is SpecKind.PATH
    assert spec.has_active_scheduling and spec.has_binary
    assert spec.binary_name == "scx_lavd"
    assert spec.describe() == "path(/opt/scx/bin/scx_lavd)"


def test_kernel_builtin() -> None:
    spec = SchedulerSpec.kernel_builtin(
        enable=["echo minlat > /sys/kernel/debug/sched/ext/root/ops"],
        disable=["echo none > /sys/kernel/debug/sched/ext/root/ops"],
    )
    assert spec.kind is SpecKind.KERNEL_BUILTIN
    assert spec.has_active_scheduling
    assert not spec.has_binary
    assert spec.binary_name is None
    assert spec.enable == ("echo minlat > /sys/kernel/debug/sched/ext/root/ops",)


def test_has_active_scheduling_is_false_only_for_eevdf() -> None:
    specs = [
        SchedulerSpec.EEVDF,
        SchedulerSpec.discover("a"),
        SchedulerSpec.path("/a"),
        SchedulerSpec.kernel_builtin(enable=["true"]),
    ]
    assert {s.kind for s in specs} == set(SpecKind)
    assert [s.has_active_scheduling for s in specs] == [False, True, True, True]


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda: SchedulerSpec.discover(""), "discover\\(\\) needs a binary name"),
        (lambda: SchedulerSpec.discover("bin/scx"), "discover\\(\\) takes a bare binary name"),
        (lambda: SchedulerSpec.path("scx_simple"), "path\\(\\) needs an absolute path"),
        (lambda: SchedulerSpec.kernel_builtin(enable=[]), "needs at least one enable command"),
        (
            lambda: SchedulerSpec.model_validate(
                {"kind": SpecKind.DISCOVER, "name": "a", "enable": ("x",)}),
            "belong to kernel_builtin\\(\\) only",
        ),
        (
            lambda: SchedulerSpec.model_validate({"kind": SpecKind.EEVDF, "name": "a"}),
            "belongs to discover\\(\\) only",
        ),
        (
            lambda: SchedulerSpec.model_validate({"kind": SpecKind.EEVDF, "binary_path": "/a"}),
            "belongs to path\\(\\) only",
        ),
    ],
)
def test_inconsistent_specs_are_rejected(make: object, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        make()  # type: ignore[operator]


def test_a_string_is_a_name_or_an_absolute_path() -> None:
    assert SchedulerSpec.model_validate("scx_simple") == SchedulerSpec.discover("scx_simple")
    assert SchedulerSpec.model_validate("/bin/scx") == SchedulerSpec.path("/bin/scx")
    with pytest.raises(ValidationError, match=r"bare name to discover .* or an absolute path"):
        SchedulerSpec.model_validate("bin/scx")


def test_builtin_eevdf_scheduler_is_the_default() -> None:
    assert Scheduler.EEVDF is EEVDF
    assert EEVDF.name == "eevdf"
    assert EEVDF.binary == SchedulerSpec.EEVDF
    assert not EEVDF.binary.has_active_scheduling
    assert EEVDF.merged_args() == []


def test_specs_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        SchedulerSpec.EEVDF.name = "x"  # type: ignore[misc]
