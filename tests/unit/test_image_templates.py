"""The jinja2 environment over initramfs/: strict, shell-quoting, golden-tested."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from ktstr.errors import InfraError, UserError
from ktstr.image import templates
from ktstr.image.templates import render, shquote
from ktstr.testing.golden import SHELLS, assert_golden, check_shell_syntax

GOLDEN = Path(__file__).parent / "golden" / "image"
EXAMPLE = "_test_example.sh.j2"
CONTEXT = {"greeting": "it's $HOME `x`", "modules": ["9p", "9pnet virtio"], "poweroff": True}


@pytest.fixture(autouse=True)
def _fresh_environment() -> None:
    templates._environment.cache_clear()


def test_example_matches_its_golden_file() -> None:
    assert_golden(render(EXAMPLE, **CONTEXT), GOLDEN / "_test_example.sh")


def test_rendered_example_is_valid_shell_for_sh_and_busybox() -> None:
    check_shell_syntax(render(EXAMPLE, **CONTEXT))


def test_rendered_example_runs_with_quoted_values_intact() -> None:
    script = render(EXAMPLE, **{**CONTEXT, "poweroff": False})
    done = subprocess.run(
        ["busybox", "sh", "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == [
        "loading 9p",
        "loading 9pnet virtio",
        "it's $HOME `x`",
    ]


def test_environment_is_cached_strict_and_keeps_trailing_newline() -> None:
    env = templates.environment()
    assert templates.environment() is env
    assert env.keep_trailing_newline and not env.autoescape
    assert render(EXAMPLE, **CONTEXT).endswith('echo "$greeting"\n')


def test_an_undefined_variable_is_an_error_naming_it() -> None:
    with pytest.raises(UserError, match=r"'modules' is undefined; pass it to render\(\)"):
        render(EXAMPLE, greeting="hi", poweroff=False)


def test_an_unknown_template_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match=r"no initramfs template 'nope.j2' .*_test_example\.sh\.j2"):
        render("nope.j2")


def test_env_var_points_at_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t.j2").write_text("x={{ v | shquote }}\n")
    monkeypatch.setenv(templates.ENV_VAR, str(tmp_path))
    assert render("t.j2", v="a b") == "x='a b'\n"


def test_a_syntax_error_names_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.j2").write_text("ok\n{% if %}\n")
    monkeypatch.setenv(templates.ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=r"bad\.j2:2: "):
        render("bad.j2")


def test_a_missing_folder_says_which_variable_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(templates.ENV_VAR, str(tmp_path / "none"))
    with pytest.raises(InfraError, match="set KTSTR_INITRAMFS_DIR"):
        render(EXAMPLE)


@pytest.mark.parametrize(
    "value", ["", "plain", "it's", "a b", "$(reboot)", "'''", "\n\t", "ü/ß", 42, Path("/a b")]
)
def test_shquote_round_trips_through_a_posix_shell(value: object) -> None:
    assert shlex.split(shquote(value)) == [str(value)]
    out = subprocess.run(
        ["sh", "-c", f"printf %s {shquote(value)}"], capture_output=True, text=True, check=True
    ).stdout
    assert out == str(value)


def test_shquote_joins_lists() -> None:
    assert shquote(["a", "b c"]) == "'a' 'b c'"


def test_shquote_rejects_none() -> None:
    with pytest.raises(UserError, match="shquote takes a string"):
        shquote(None)


def test_golden_helper_reports_a_diff_and_updates_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = tmp_path / "g.txt"
    with pytest.raises(
        AssertionError, match="is missing; run the tests with KTSTR_UPDATE_GOLDEN=1"
    ):
        assert_golden("a\n", golden)
    monkeypatch.setenv("KTSTR_UPDATE_GOLDEN", "1")
    assert_golden("a\n", golden)
    monkeypatch.delenv("KTSTR_UPDATE_GOLDEN")
    assert_golden("a\n", golden)
    with pytest.raises(AssertionError, match=r"(?s)differs from .*-a\n\+b"):
        assert_golden("b\n", golden)


@pytest.mark.parametrize(
    ("script", "shell"),
    [('echo "unterminated\n', "sh"), ("if true; then\n", "sh"), ("fi\n", "sh")],
)
def test_syntax_check_rejects_broken_shell(script: str, shell: str) -> None:
    with pytest.raises(AssertionError, match=f"{shell} -n rejects the script"):
        check_shell_syntax(script)


def test_syntax_check_runs_busybox_too() -> None:
    assert ("busybox", "sh") in [tuple(s) for s in SHELLS]
    with pytest.raises(AssertionError, match="busybox sh -n rejects"):
        check_shell_syntax("if true; then\n", shells=[("busybox", "sh")])


def test_a_render_is_remembered_until_a_template_or_the_context_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later render of the same template and context reads the remembered text (no
    jinja2); editing any file of the folder, or another context, renders again."""
    monkeypatch.setenv(templates.ENV_VAR, str(tmp_path))
    (tmp_path / "a.j2").write_text("{% include 'b.j2' %} {{ x }}\n")
    (tmp_path / "b.j2").write_text("hello")
    rendered: list[str] = []
    real = templates._render

    def counting(name: str, context: dict[str, object]) -> str:
        rendered.append(name)
        return real(name, context)

    monkeypatch.setattr(templates, "_render", counting)
    assert templates.render("a.j2", x=1) == "hello 1\n" and len(rendered) == 1
    assert templates.render("a.j2", x=1) == "hello 1\n" and len(rendered) == 1
    assert templates.render("a.j2", x=2) == "hello 2\n" and len(rendered) == 2
    (tmp_path / "b.j2").write_text("bye")  # the included file
    templates._environment.cache_clear()
    assert templates.render("a.j2", x=1) == "bye 1\n" and len(rendered) == 3
