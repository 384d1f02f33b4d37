"""The registry: explicit, atomic, duplicate-free; loaded from modules and entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ktstr import EEVDF, Payload, Registry, Scheduler, declare_payload, declare_scheduler
from ktstr.declare import Declarations
from ktstr.declare.registry import MODULE_ATTR, default_registry
from ktstr.errors import DeclarationError, DuplicateNameError, UnknownNameError, UserError


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    """Write a module into a per-test directory on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def _decls(*schedulers: str, payloads: tuple[str, ...] = ()) -> Declarations:
    d = Declarations(source="test")
    for name in schedulers:
        d.add_scheduler(Scheduler(name=name))
    for name in payloads:
        d.add_payload(Payload.binary(name, name))
    return d


def test_fresh_registry_has_only_the_builtin_eevdf(registry: Registry) -> None:
    assert registry.schedulers() == [EEVDF]
    assert registry.payloads() == []
    assert registry.origin("scheduler", "eevdf") == "ktstr (built-in)"
    assert Registry(builtins=False).schedulers() == []


def test_registries_do_not_share_state() -> None:
    a, b = Registry(), Registry()
    a.add(_decls("x"))
    assert [s.name for s in b.schedulers()] == ["eevdf"]


def test_add_and_lookup(registry: Registry) -> None:
    registry.add(_decls("b", "a", payloads=("p",)), "mod")
    assert [s.name for s in registry.schedulers()] == ["a", "b", "eevdf"]
    assert registry.scheduler("a").name == "a"
    assert registry.payload("p").name == "p"
    assert registry.origin("scheduler", "a") == "mod"


def test_unknown_names_list_the_known_ones(registry: Registry) -> None:
    registry.add(_decls("scx_a", payloads=("stress",)))
    with pytest.raises(UnknownNameError) as info:
        registry.scheduler("scx_b")
    assert str(info.value) == "unknown scheduler 'scx_b'; known schedulers: eevdf, scx_a"
    with pytest.raises(UnknownNameError, match="unknown payload 'x'; known payloads: stress"):
        registry.payload("x")
    with pytest.raises(UnknownNameError, match=r"known payloads: \(none registered\)"):
        Registry().payload("x")


def test_duplicate_is_rejected_naming_both_sources(registry: Registry) -> None:
    registry.add(_decls("scx_a"), "first_mod")
    with pytest.raises(DuplicateNameError) as info:
        registry.add(_decls("scx_a"), "second_mod")
    assert str(info.value) == (
        "scheduler 'scx_a' is declared twice (first in first_mod, again in second_mod); "
        "names must be unique: rename one"
    )
    with pytest.raises(DuplicateNameError, match="scheduler 'eevdf' is declared twice"):
        registry.add(_decls("eevdf"))


def test_add_is_atomic(registry: Registry) -> None:
    registry.add(_decls("taken", payloads=("p_taken",)))
    before = ([s.name for s in registry.schedulers()], [p.name for p in registry.payloads()])
    with pytest.raises(DuplicateNameError, match="'taken'"):
        registry.add(_decls("new1", "taken", "new2", payloads=("p_new",)))
    with pytest.raises(DuplicateNameError, match="'p_taken'"):
        registry.add(_decls("new3", payloads=("p_new", "p_taken")))
    after = ([s.name for s in registry.schedulers()], [p.name for p in registry.payloads()])
    assert after == before


def test_declarations_reject_a_name_twice() -> None:
    d = _decls("a")
    with pytest.raises(DuplicateNameError, match="scheduler 'a' is declared twice"):
        d.add_scheduler(Scheduler(name="a"))
    d.add_payload(Payload.binary("p", "p"))
    with pytest.raises(DuplicateNameError, match="payload 'p' is declared twice"):
        d.add_payload(Payload.binary("p", "q"))


def test_declare_scheduler_registers_into_the_declaring_module(
    write_module: Callable[[str, str], str], registry: Registry
) -> None:
    name = write_module(
        "decl_mod_a",
        """
        from ktstr import Scheduler, declare_payload, declare_scheduler
        DECLARED = declare_scheduler(name="declared", sched_args=["-v"])
        MANUAL = Scheduler(name="manual")
        STRESS = declare_payload(name="stress", kind="stress-ng")
        """,
    )
    registry.load_module(name)
    module = sys.modules[name]
    decls = getattr(module, MODULE_ATTR)
    assert list(decls.schedulers) == ["declared"]
    assert decls.schedulers["declared"] is module.DECLARED
    assert [s.name for s in registry.schedulers()] == ["declared", "eevdf"]
    assert registry.payload("stress") is module.STRESS
    assert registry.origin("scheduler", "declared") == name
    with pytest.raises(UnknownNameError):
        registry.scheduler("manual")
    assert [s.name for s in registry.swept_schedulers()] == ["declared"]


def test_loading_a_module_twice_adds_it_once(
    write_module: Callable[[str, str], str], registry: Registry
) -> None:
    name = write_module(
        "decl_mod_b", "from ktstr import declare_scheduler\ndeclare_scheduler(name='b')\n"
    )
    registry.load_module(name)
    registry.load_module(name)
    assert [s.name for s in registry.schedulers()] == ["b", "eevdf"]


def test_declare_into_an_explicit_declarations() -> None:
    d = Declarations("mine")
    s = declare_scheduler(into=d, name="x")
    p = declare_payload(into=d, name="p", kind="p")
    assert d.schedulers == {"x": s}
    assert d.payloads == {"p": p}


def test_declare_scheduler_error_names_the_declaration_and_its_line() -> None:
    with pytest.raises(DeclarationError) as info:
        declare_scheduler(name="bad", cgroup_parent="/")
    assert info.value.declaration.startswith("scheduler 'bad' (")
    assert f"{__file__}:" in info.value.declaration


def test_missing_module_is_a_user_error(registry: Registry) -> None:
    with pytest.raises(UserError, match="cannot import declarations module 'no_such_mod_xyz'"):
        registry.load_module("no_such_mod_xyz")


def test_invalid_model_at_import_becomes_a_declaration_error(
    write_module: Callable[[str, str], str], registry: Registry
) -> None:
    name = write_module(
        "decl_mod_c",
        """
        from ktstr import Sysctl

        FOO = Sysctl("kernel/foo", "1")
        """,
    )
    with pytest.raises(DeclarationError) as info:
        registry.load_module(name)
    assert info.value.declaration.startswith("Sysctl in decl_mod_c (")
    assert info.value.declaration.endswith("decl_mod_c.py:4)")
    assert info.value.problems == [
        "key: 'kernel/foo' is invalid: sysctl keys use the dot form: write 'kernel.foo', "
        "not 'kernel/foo'"
    ]


def test_entry_points_load_the_project_declarations(registry: Registry) -> None:
    registry.load_entry_points()
    names = {s.name for s in registry.schedulers()}
    assert {"eevdf", "scx_simple", "scx_qmap"} <= names
    assert registry.origin("scheduler", "scx_simple") == "ktstr.schedulers.examples"
    assert registry.origin("payload", "stress-ng") == "ktstr.payloads.builtin"
    # a second registry sees the same declarations: nothing was consumed
    again = default_registry()
    assert {s.name for s in again.schedulers()} == names


def test_default_registry_adds_extra_modules(write_module: Callable[[str, str], str]) -> None:
    name = write_module(
        "decl_mod_d", "from ktstr import declare_scheduler\ndeclare_scheduler(name='d')\n"
    )
    reg = default_registry([name])
    assert reg.scheduler("d").name == "d"
    assert reg.scheduler("scx_simple").name == "scx_simple"


def test_an_extra_module_clashing_with_an_entry_point_is_rejected(
    write_module: Callable[[str, str], str],
) -> None:
    name = write_module(
        "decl_mod_e", "from ktstr import declare_scheduler\ndeclare_scheduler(name='scx_simple')\n"
    )
    with pytest.raises(
        DuplicateNameError, match=r"first in ktstr\.schedulers\.examples, again in decl_mod_e"
    ):
        default_registry([name])


def test_import_ktstr_registers_nothing() -> None:
    code = (
        "import sys, ktstr\n"
        "assert 'ktstr.schedulers.examples' not in sys.modules, 'schedulers loaded'\n"
        "assert 'ktstr.payloads.builtin' not in sys.modules, 'payloads loaded'\n"
        "print(sorted(s.name for s in ktstr.Registry().schedulers()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['eevdf']"
