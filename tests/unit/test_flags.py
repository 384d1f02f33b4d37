"""Flag profiles: the power set of a scheduler's flags, filtered by ``requires``."""

from __future__ import annotations

import pytest

from ktstr import Flag, FlagSet, Scheduler, UserError, flag, flag_profiles
from ktstr.declare.flags import make_flag_set
from ktstr.errors import DeclarationError


@flag_profiles
class QmapFlags:
    slice = flag(args=["-s", "5000"])
    batch = flag(args=["-b", "4"], requires=["slice"])
    stall = flag(args=["-S"])


def test_decorator_collects_flags_in_declaration_order() -> None:
    assert isinstance(QmapFlags, FlagSet)
    assert [f.name for f in QmapFlags.flags] == ["slice", "batch", "stall"]
    assert QmapFlags.flags[1] == Flag(name="batch", args=("-b", "4"), requires=("slice",))


def test_profiles_are_the_power_set_filtered_by_requires() -> None:
    names = [p.name for p in QmapFlags.profiles()]
    # 2**3 = 8 subsets; the 2 with batch but without slice are dropped
    assert names == ["default", "slice", "stall", "slice+batch", "slice+stall", "slice+batch+stall"]


def test_profile_args_follow_flag_order() -> None:
    p = QmapFlags.profile("slice+batch+stall")
    assert p.flags == ("slice", "batch", "stall")
    assert p.args == ("-s", "5000", "-b", "4", "-S")
    assert QmapFlags.profile("default").args == ()


def test_no_flags_means_one_default_profile() -> None:
    assert [p.name for p in FlagSet().profiles()] == ["default"]


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown flag profile 'batch'; known flag profiles: "):
        QmapFlags.profile("batch")


def test_unknown_requires_is_rejected() -> None:
    with pytest.raises(DeclarationError) as info:

        @flag_profiles
        class Bad:
            a = flag(requires=["nope"])

    assert info.value.problems == [
        "flags.a.requires: 'nope' is invalid: requires an unknown flag; known flags: a"
    ]
    assert str(info.value).startswith("flag profiles Bad: ")


def test_self_requires_is_rejected() -> None:
    with pytest.raises(DeclarationError) as info:

        @flag_profiles
        class Bad:
            a = flag()
            b = flag(requires=["b", "a"])

    assert info.value.problems == [
        "flags.b.requires: 'b' is invalid: a flag cannot require itself: remove it from requires"
    ]


def test_bad_flag_name_is_reported_per_flag() -> None:
    with pytest.raises(DeclarationError) as info:

        @flag_profiles
        class Bad:
            Loud = flag()

    (line,) = info.value.problems
    assert line.startswith("flag 'Loud': name: 'Loud' is invalid")


def test_duplicate_flag_in_a_flag_set_is_rejected() -> None:
    with pytest.raises(
        DeclarationError, match=r"flags\.a: .a. is invalid: this flag is declared twice"
    ):
        make_flag_set([Flag(name="a"), Flag(name="a")], "mine")


def test_scheduler_flags_feed_merged_args() -> None:
    s = Scheduler(name="scx_qmap", flags=QmapFlags, sched_args=["-v"])
    assert [p.name for p in s.flag_profiles()] == [p.name for p in QmapFlags.profiles()]
    profile = s.flags.profile("slice")
    assert s.merged_args(["--extra"], profile.args) == ["-v", "--extra", "-s", "5000"]
