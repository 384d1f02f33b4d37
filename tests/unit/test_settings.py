"""Sysctl, CgroupPath and guest kernel arguments."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ktstr import CgroupPath, Scheduler, Sysctl
from ktstr.declare import Declarations, declare_scheduler, effective_sysctls
from ktstr.declare.settings import RESERVED_KARGS, check_karg
from ktstr.errors import DeclarationError


def _declare(**fields: object) -> Scheduler:
    return declare_scheduler(into=Declarations(), name="s", **fields)


# -- Sysctl ----------------------------------------------------------------------------


def test_sysctl_dot_form() -> None:
    s = Sysctl("kernel.sched_autogroup_enabled", "0")
    assert (s.key, s.value) == ("kernel.sched_autogroup_enabled", "0")
    assert s.proc_path == "/proc/sys/kernel/sched_autogroup_enabled"
    assert Sysctl(key="net.core.somaxconn", value="4096").proc_path == (
        "/proc/sys/net/core/somaxconn"
    )


@pytest.mark.parametrize(
    ("key", "dotted"),
    [
        ("kernel/foo", "kernel.foo"),
        ("/proc/sys/kernel/foo", "kernel.foo"),
        ("net/ipv4/ip_forward", "net.ipv4.ip_forward"),
    ],
)
def test_slash_form_is_rejected_with_the_dot_form_shown(key: str, dotted: str) -> None:
    with pytest.raises(ValidationError) as info:
        Sysctl(key, "1")
    assert f"write {dotted!r}, not {key!r}" in str(info.value)


@pytest.mark.parametrize("key", ["kernel", "", "kernel..foo", "kernel.foo bar"])
def test_key_must_be_dotted_words(key: str) -> None:
    with pytest.raises(ValidationError, match="dot-separated words"):
        Sysctl(key, "1")


def test_value_is_text_from_str_int_or_bool() -> None:
    assert Sysctl("kernel.foo", 5).value == "5"
    assert Sysctl("kernel.foo", True).value == "1"
    assert Sysctl("kernel.foo", False).value == "0"


@pytest.mark.parametrize("value", ["", "  ", "1\n2"])
def test_value_must_be_one_non_empty_line(value: str) -> None:
    with pytest.raises(ValidationError, match="non-empty and on one line"):
        Sysctl("kernel.foo", value)


def test_duplicate_keys_apply_in_order_last_wins() -> None:
    sysctls = [
        Sysctl("kernel.a", "1"),
        Sysctl("kernel.b", "2"),
        Sysctl("kernel.a", "3"),
    ]
    assert effective_sysctls(sysctls) == {"kernel.b": "2", "kernel.a": "3"}
    assert list(effective_sysctls(sysctls)) == ["kernel.b", "kernel.a"]
    assert effective_sysctls([]) == {}


def test_scheduler_keeps_every_sysctl_in_declared_order() -> None:
    s = _declare(sysctls=[Sysctl("kernel.a", "1"), ("kernel.a", "2")])
    assert [(x.key, x.value) for x in s.sysctls] == [("kernel.a", "1"), ("kernel.a", "2")]
    assert effective_sysctls(s.sysctls) == {"kernel.a": "2"}


def test_scheduler_accepts_a_sysctl_mapping() -> None:
    s = _declare(sysctls={"kernel.a": "1", "vm.b": 2})
    assert s.sysctls == (Sysctl("kernel.a", "1"), Sysctl("vm.b", "2"))


def test_scheduler_sysctl_problem_names_the_item() -> None:
    with pytest.raises(DeclarationError) as info:
        _declare(sysctls=[Sysctl("kernel.ok", "1"), ("kernel/foo", "1")])
    assert info.value.problems == [
        "sysctls[1].key: 'kernel/foo' is invalid: sysctl keys use the dot form: "
        "write 'kernel.foo', not 'kernel/foo'"
    ]


def test_sysctl_pair_needs_two_values() -> None:
    with pytest.raises(DeclarationError, match=r"a sysctl is \(key, value\): 2 values, got 3"):
        _declare(sysctls=[("kernel.a", "1", "2")])


# -- CgroupPath ------------------------------------------------------------------------


def test_cgroup_path_forms() -> None:
    assert CgroupPath("/ktstr").path == "/ktstr"
    assert str(CgroupPath("/a/b")) == "/a/b"
    assert CgroupPath("/ktstr/").path == "/ktstr"


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("ktstr", "must begin with '/': write '/ktstr'"),
        ("/", "must not be '/' alone"),
        ("//", "must not be '/' alone"),
        ("/a//b", "must not contain empty, '.' or '..' components"),
        ("/a/../b", "must not contain empty, '.' or '..' components"),
        ("", "at least 1 character"),
    ],
)
def test_cgroup_path_rules(path: str, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        CgroupPath(path)


def test_scheduler_cgroup_parent_from_a_string() -> None:
    assert _declare(cgroup_parent="/ktstr").cgroup_parent == CgroupPath("/ktstr")


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("/", "cgroup_parent.path: '/' is invalid: a cgroup path must not be '/' alone"),
        ("ktstr", "cgroup_parent.path: 'ktstr' is invalid: a cgroup path must begin with '/'"),
    ],
)
def test_scheduler_cgroup_parent_rejected(path: str, line: str) -> None:
    with pytest.raises(DeclarationError) as info:
        _declare(cgroup_parent=path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(line)


# -- kargs -----------------------------------------------------------------------------


def test_ordinary_kargs_pass() -> None:
    assert _declare(kargs=["nosmt", "mitigations=off"]).kargs == ("nosmt", "mitigations=off")
    assert check_karg("sched_verbose") == "sched_verbose"


@pytest.mark.parametrize("name", RESERVED_KARGS)
def test_reserved_kargs_are_rejected(name: str) -> None:
    assert set(RESERVED_KARGS) == {"console", "loglevel", "init", "rdinit"}
    with pytest.raises(DeclarationError) as info:
        _declare(kargs=["nosmt", f"{name}=x"])
    (line,) = info.value.problems
    assert line.startswith(f"kargs[1]: '{name}=x' is invalid: {name}= is set by ktstr itself")
    assert "cannot be overridden" in line


def test_every_bad_karg_is_its_own_problem() -> None:
    with pytest.raises(DeclarationError) as info:
        _declare(kargs=["console=ttyS1", "ok", "loglevel=7", "two words"])
    assert [p.split(":")[0] for p in info.value.problems] == ["kargs[0]", "kargs[2]", "kargs[3]"]
    assert "one word without spaces" in info.value.problems[2]


def test_kargs_must_be_a_list() -> None:
    with pytest.raises(DeclarationError, match=r"kargs: 'nosmt' is invalid: give a list"):
        _declare(kargs="nosmt")
