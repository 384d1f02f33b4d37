"""The Scheduler declaration: every field, defaults, the argument merge order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktstr import (
    Assert,
    CgroupPath,
    ConfigFileDef,
    Scheduler,
    SchedulerSpec,
    Sysctl,
    Topology,
    TopologyConstraints,
    merge_sched_args,
)
from ktstr.declare import Declarations, declare_scheduler
from ktstr.errors import DeclarationError


def _problems(**fields: object) -> list[str]:
    with pytest.raises(DeclarationError) as info:
        declare_scheduler(into=Declarations(), **fields)
    return info.value.problems


def test_every_field_of_the_seed_is_declared() -> None:
    seed_fields = {
        "name", "binary", "sysctls", "kargs", "assert_", "cgroup_parent", "sched_args",
        "topology", "constraints", "config_file", "config_file_def", "kernels",
    }  # fmt: skip
    assert seed_fields <= set(Scheduler.model_fields)


def test_defaults() -> None:
    s = Scheduler(name="my_sched")
    assert s.binary == SchedulerSpec.discover("my_sched")
    assert s.sysctls == ()
    assert s.kargs == ()
    assert s.assert_ == Assert()
    assert s.cgroup_parent is None
    assert s.sched_args == ()
    assert s.topology == Topology(1, 1, 2, 1)
    assert s.constraints == TopologyConstraints()
    assert s.config_file is None
    assert s.config_file_def is None
    assert s.kernels == ()
    assert s.config_guest_path is None


def test_every_field_set() -> None:
    s = Scheduler(
        name="scx_mitosis",
        binary="/opt/scx/scx_mitosis",
        sysctls=[Sysctl("kernel.sched_autogroup_enabled", "0")],
        kargs=["nosmt"],
        assert_=Assert(max_imbalance_ratio=2.0),
        cgroup_parent="/ktstr",
        sched_args=["--exit-dump-len", "1048576"],
        topology=(1, 2, 4, 1),
        constraints=TopologyConstraints(min_llcs=2),
        config_file="configs/mitosis.toml",
        kernels=["6.14", "6.15..=7.0"],
        description="cells",
    )
    assert s.binary == SchedulerSpec.path("/opt/scx/scx_mitosis")
    assert s.sysctls == (Sysctl("kernel.sched_autogroup_enabled", "0"),)
    assert s.kargs == ("nosmt",)
    assert s.assert_.max_imbalance_ratio == 2.0
    assert s.cgroup_parent == CgroupPath("/ktstr")
    assert s.sched_args == ("--exit-dump-len", "1048576")
    assert s.topology == Topology(1, 2, 4, 1)
    assert s.constraints.min_llcs == 2
    assert s.config_file == "configs/mitosis.toml"
    assert s.config_guest_path == "/include-files/mitosis.toml"
    assert s.kernels == ("6.14", "6.15..=7.0")


def test_binary_forms() -> None:
    assert Scheduler(name="a", binary="scx_b").binary == SchedulerSpec.discover("scx_b")
    assert Scheduler(name="a", binary="/x/scx").binary == SchedulerSpec.path("/x/scx")
    kb = SchedulerSpec.kernel_builtin(enable=["echo on"], disable=["echo off"])
    assert Scheduler(name="minlat", binary=kb).binary is kb


def test_topology_forms() -> None:
    for form in ((1, 2, 4, 1), [1, 2, 4, 1], "1,2,4,1", "1n2l4c1t", Topology(1, 2, 4, 1)):
        assert Scheduler(name="a", topology=form).topology == Topology(1, 2, 4, 1)


def test_scheduler_is_frozen() -> None:
    s = Scheduler(name="a")
    with pytest.raises(ValidationError, match="frozen"):
        s.name = "b"  # type: ignore[misc]
    derived = s.model_copy(update={"sched_args": ("-v",)})
    assert (s.sched_args, derived.sched_args) == ((), ("-v",))


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({}, "name: is required"),
        ({"name": ""}, "name: '' is invalid: a scheduler name starts with a letter or digit"),
        ({"name": "a b"}, "name: 'a b' is invalid: a scheduler name starts with"),
        ({"name": "a", "binary": "rel/scx"}, "binary: 'rel/scx' is invalid: a binary is a bare"),
        ({"name": "a", "topology": (1, 2)}, "topology: (1, 2) is invalid: a topology is"),
        ({"name": "a", "topology": "big"}, "topology: 'big' is invalid: not a topology"),
        (
            {"name": "a", "topology": (2, 3, 1, 1)},
            "topology: (2, 3, 1, 1) is invalid: llcs (3) must be a multiple of numa_nodes (2)",
        ),
        ({"name": "a", "sched_args": "-v"}, "sched_args: '-v' is invalid: give a list"),
        ({"name": "a", "kernels": "6.14"}, "kernels: '6.14' is invalid: give a list"),
        (
            {"name": "a", "kernels": ["6.14", "7.0..6.14"]},
            "kernels[1]: '7.0..6.14' is invalid: bad kernel range '7.0..6.14': 7.0 is after 6.14",
        ),
        ({"name": "a", "config_file": "configs/"}, "config_file: 'configs/' is invalid"),
        (
            {"name": "a", "config_file_def": ("--config",)},
            "config_file_def: ('--config',) is invalid: config_file_def is (arg_template, "
            "guest_path): 2 values, got 1",
        ),
        (
            {"name": "a", "config_file_def": ("--config", "/x.json")},
            "config_file_def.arg_template: '--config' is invalid: the argument template must "
            "contain '{file}'",
        ),
        (
            {"name": "a", "config_file_def": ("--config={file}", "x.json")},
            "config_file_def.guest_path: 'x.json' is invalid: the guest path must be absolute",
        ),
        ({"name": "a", "colour": "red"}, "colour: 'red' is invalid: no such field"),
        (
            {"name": "a", "assert": {"max_spread_pct": 300}},
            "assert.max_spread_pct: 300 is invalid: Input should be less than or equal to 100",
        ),
        (
            {"name": "a", "constraints": {"min_llcs": 5, "max_llcs": 2}},
            "constraints: {'min_llcs': 5, 'max_llcs': 2} is invalid: min_llcs (5) is greater",
        ),
    ],
)
def test_rejected_fields_name_field_value_and_rule(fields: dict[str, object], line: str) -> None:
    problems = _problems(**fields)
    assert len(problems) == 1, problems
    assert problems[0].startswith(line), problems[0]


def test_config_file_and_config_file_def_are_alternatives() -> None:
    (line,) = _problems(
        name="a", config_file="a.toml", config_file_def=("--config={file}", "/x.json")
    )
    assert line == (
        "config_file ('a.toml') and config_file_def ('--config={file}', '/x.json') are "
        "alternatives: use config_file for a host file, config_file_def for inline content "
        "from the test, not both"
    )


def test_eevdf_takes_no_binary_arguments() -> None:
    problems = _problems(name="e", binary=SchedulerSpec.EEVDF, sched_args=["-v"], config_file="c")
    assert [p.split(":")[0] for p in problems] == ["sched_args", "config_file"]
    assert all("an EEVDF scheduler runs no binary" in p for p in problems)


def test_problems_are_all_reported_and_labelled() -> None:
    with pytest.raises(DeclarationError) as info:
        declare_scheduler(into=Declarations(), name="x", kargs=["init=/bin/sh"], cgroup_parent="/")
    assert len(info.value.problems) == 2
    assert all(line.startswith("scheduler 'x': ") for line in str(info.value).splitlines())


# -- merge order -------------------------------------------------------------------------


def test_merge_order_config_cgroup_sched_extra_flags() -> None:
    s = Scheduler(
        name="scx_mitosis",
        config_file="configs/my_sched.toml",
        cgroup_parent="/ktstr",
        sched_args=["--exit-dump-len", "1048576"],
    )
    assert merge_sched_args(s, ["--test-arg"], ["--flag-arg"]) == [
        "--config", "/include-files/my_sched.toml",
        "--cell-parent-cgroup", "/ktstr",
        "--exit-dump-len", "1048576",
        "--test-arg",
        "--flag-arg",
    ]  # fmt: skip
    assert s.merged_args(["--test-arg"], ["--flag-arg"]) == merge_sched_args(
        s, ["--test-arg"], ["--flag-arg"]
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, []),
        ({"sched_args": ["-a"]}, ["-a", "X", "F"]),
        ({"cgroup_parent": "/c"}, ["--cell-parent-cgroup", "/c", "X", "F"]),
        ({"config_file": "/abs/c.json"}, ["--config", "/include-files/c.json", "X", "F"]),
    ],
)
def test_each_injection_alone(fields: dict[str, object], expected: list[str]) -> None:
    s = Scheduler(name="s", **fields)
    extra, flags = (["X"], ["F"]) if fields else ((), ())
    assert merge_sched_args(s, extra, flags) == expected


def test_config_file_def_substitutes_file_with_its_guest_path() -> None:
    cfd = ConfigFileDef("--config={file}", "/include-files/my.json")
    assert cfd.arg() == "--config=/include-files/my.json"
    s = Scheduler(name="s", config_file_def=cfd, cgroup_parent="/k", sched_args=["-v"])
    assert s.config_guest_path == "/include-files/my.json"
    assert merge_sched_args(s, ["-t"], inline_config=True) == [
        "--config=/include-files/my.json", "--cell-parent-cgroup", "/k", "-v", "-t",
    ]  # fmt: skip
    # without inline content from the test there is nothing to point at
    assert merge_sched_args(s, ["-t"]) == ["--cell-parent-cgroup", "/k", "-v", "-t"]


def test_config_file_def_substitutes_every_placeholder() -> None:
    cfd = ConfigFileDef(arg_template="--a={file},{file}", guest_path="/g")
    assert cfd.arg() == "--a=/g,/g"


def test_merge_does_not_change_the_scheduler() -> None:
    s = Scheduler(name="s", sched_args=["-a"])
    merge_sched_args(s, ["-b"], ["-c"])
    assert s.sched_args == ("-a",)
