"""The CLI skeleton: --version, list, show, and readable declaration errors."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ktstr import __version__
from ktstr.cli import main


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``ktstr ARGS`` in process; returns (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out, err = capsys.readouterr()
        code = info.value.code
        return (code if isinstance(code, int) else 1), out, err

    return invoke


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def test_version(run: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = run("--version")
    assert code == 0
    assert out.strip() == f"ktstr, version {__version__}"


def test_help_lists_the_commands(run: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "list" in out and "show" in out
    assert "KTSTR_DECLARATIONS" in out


def test_list_presets_shows_24_presets_with_cpu_counts(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, _ = run("list", "presets")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()][:24]
    assert len(rows) == 24
    by_name = {r[0]: (r[1], r[2]) for r in rows}
    assert by_name["tiny-1llc"] == ("1n1l4c1t", "4")
    assert by_name["max-cpu-nosmt"] == ("1n14l18c1t", "252")
    assert by_name["numa4-12llc"] == ("4n12l8c2t", "192")
    assert "24 presets" in out


def test_list_presets_json(run: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = run("list", "presets", "--json")
    assert code == 0
    data = json.loads(out)
    assert len(data) == 24
    assert data[0]["name"] == "tiny-1llc"
    assert data[0]["cpus"] == 4
    assert {"topology", "numa_nodes", "llcs", "cores_per_llc", "threads_per_core",
            "fits_host"} <= set(data[0])  # fmt: skip


def test_list_schedulers_and_payloads(run: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = run("list", "schedulers")
    assert code == 0
    assert "eevdf" in out and "scx_simple" in out
    code, out, _ = run("list", "schedulers", "--json")
    assert code == 0
    names = [s["name"] for s in json.loads(out)]
    assert names == sorted(names) and "eevdf" in names
    code, out, _ = run("list", "payloads", "--json")
    assert code == 0
    assert "stress-ng" in [p["name"] for p in json.loads(out)]
    code, out, _ = run("list", "payloads")
    assert code == 0 and "stress-ng" in out


MITOSIS = """
    from ktstr import declare_scheduler

    MITOSIS = declare_scheduler(
        name="scx_mitosis_t",
        topology=(1, 2, 4, 1),
        config_file="configs/my_sched.toml",
        cgroup_parent="/ktstr",
        sched_args=["--exit-dump-len", "1048576"],
    )
"""


def test_show_scheduler_prints_merged_args_in_the_seed_order(
    run: Callable[..., tuple[int, str, str]], write_module: Callable[[str, str], str]
) -> None:
    module = write_module("cli_decl_mitosis", MITOSIS)
    code, out, err = run("-d", module, "show", "scheduler", "scx_mitosis_t")
    assert code == 0, err
    merged = next(line for line in out.splitlines() if line.startswith("merged args:"))
    assert merged.split(":", 1)[1].split() == [
        "--config", "/include-files/my_sched.toml",
        "--cell-parent-cgroup", "/ktstr",
        "--exit-dump-len", "1048576",
    ]  # fmt: skip
    assert "1n2l4c1t" in out
    assert f"declared in:     {module}" in out


def test_show_scheduler_json(
    run: Callable[..., tuple[int, str, str]], write_module: Callable[[str, str], str]
) -> None:
    module = write_module("cli_decl_mitosis_json", MITOSIS)
    code, out, _ = run("--declarations", module, "show", "scheduler", "scx_mitosis_t", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["merged_args"][:4] == [
        "--config", "/include-files/my_sched.toml", "--cell-parent-cgroup", "/ktstr"
    ]  # fmt: skip
    assert data["resolved_topology"] == {"label": "1n2l4c1t", "total_cpus": 8}
    assert data["cgroup_parent"] == {"path": "/ktstr"}
    assert "assert" in data
    assert data["has_active_scheduling"] is True


def test_declarations_from_the_environment(
    run: Callable[..., tuple[int, str, str]],
    write_module: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = write_module("cli_decl_env", MITOSIS)
    monkeypatch.setenv("KTSTR_DECLARATIONS", module)
    code, out, _ = run("show", "scheduler", "scx_mitosis_t")
    assert code == 0 and "--cell-parent-cgroup /ktstr" in out


def test_show_payload(run: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = run("show", "payload", "stress-ng")
    assert code == 0 and "default_args" in out
    code, out, _ = run("show", "payload", "stress-ng", "--json")
    assert json.loads(out)["name"] == "stress-ng"


def test_unknown_scheduler_exits_2_listing_the_known_ones(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    code, _, err = run("show", "scheduler", "nope")
    assert code == 2
    assert err.startswith("error: unknown scheduler 'nope'; known schedulers: eevdf, ")


def test_bad_declaration_module_exits_2_with_one_line_per_problem(
    run: Callable[..., tuple[int, str, str]], write_module: Callable[[str, str], str]
) -> None:
    module = write_module(
        "cli_decl_bad",
        """
        from ktstr import declare_scheduler

        declare_scheduler(
            name="broken",
            cgroup_parent="/",
            kargs=["console=ttyS1"],
            sysctls=[("kernel/foo", "1")],
            topology=(2, 3, 1, 1),
        )
        """,
    )
    code, out, err = run("-d", module, "list", "schedulers")
    assert code == 2
    assert out == ""
    lines = err.removeprefix("error: ").splitlines()
    assert len(lines) == 4
    assert all(line.startswith("scheduler 'broken' (") for line in lines)
    assert all("cli_decl_bad.py:4): " in line for line in lines)
    problems = sorted(line.split("): ", 1)[1] for line in lines)
    assert problems == [
        "cgroup_parent.path: '/' is invalid: a cgroup path must not be '/' alone: name a "
        "subtree such as '/ktstr'",
        "kargs[0]: 'console=ttyS1' is invalid: console= is set by ktstr itself and cannot be "
        "overridden: it would break the guest init (reserved: console=, loglevel=, init=, "
        "rdinit=)",
        "sysctls[0].key: 'kernel/foo' is invalid: sysctl keys use the dot form: write "
        "'kernel.foo', not 'kernel/foo'",
        "topology: (2, 3, 1, 1) is invalid: llcs (3) must be a multiple of numa_nodes (2): "
        "every NUMA node holds the same number of LLCs",
    ]
    for raw in ("pydantic", "errors.pydantic.dev", "validation error", "type=", "Traceback"):
        assert raw not in err


def test_model_built_badly_at_import_exits_2(
    run: Callable[..., tuple[int, str, str]], write_module: Callable[[str, str], str]
) -> None:
    module = write_module(
        "cli_decl_bad_model",
        """
        from ktstr import Topology

        BIG = Topology(2, 3, 1, 1)
        """,
    )
    code, _, err = run("-d", module, "list", "schedulers")
    assert code == 2
    assert err.startswith("error: Topology in cli_decl_bad_model (")
    assert "llcs (3) must be a multiple of numa_nodes (2)" in err
    assert "errors.pydantic.dev" not in err


def test_missing_declaration_module_exits_2(run: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = run("-d", "no_such_declarations_mod", "list", "schedulers")
    assert code == 2
    assert "cannot import declarations module 'no_such_declarations_mod'" in err


def test_unknown_command_is_a_usage_error(run: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = run("frobnicate")
    assert code == 2
    assert "No such command" in err
