"""``ktstr.testing`` is a light leaf (issue 17, structure item 4).

Light: importing it (every submodule) loads none of the service's dependencies, nor the
service itself; its harnesses import them when they start. A leaf: no module of ktstr
outside ``ktstr/testing/`` imports it at module level, and a function may import it only
where ``LAZY_ALLOWED`` says so (the worker's ``--runner scripted``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ktstr
from ktstr.errors import InfraError
from ktstr.testing.postgres import SERVER_TOOLS, candidate_bin_dirs, find_server_bin_dir

PACKAGE_ROOT = Path(ktstr.__file__).parent
TESTING = "ktstr.testing"
HEAVY = ("fastapi", "sqlalchemy", "uvicorn", "starlette", "alembic", "ktstr.service")

#: (file under ktstr/, enclosing function) that may import ktstr.testing inside a function
LAZY_ALLOWED = {("worker/runner.py", "make_runner")}


def test_importing_ktstr_testing_loads_nothing_heavy() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import ktstr.testing\n"
        "for m in pkgutil.walk_packages(ktstr.testing.__path__, 'ktstr.testing.'):\n"
        "    importlib.import_module(m.name)\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules\n"
        "             if any(m == h or m.startswith(h + '.') for h in heavy)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"ktstr.testing imported: {proc.stdout.strip()}"


def _testing_imports(tree: ast.AST, module: str, is_package: bool
                     ) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None]]:
    """Every import of ktstr.testing (or a submodule) under ``tree``, with the name of the
    function it sits in (None at module level, in a class body or under an ``if``)."""

    def absolute(node: ast.ImportFrom) -> str:
        if node.level == 0:
            return node.module or ""
        parts = module.split(".")[: None if is_package else -1]
        if node.level > 1:
            parts = parts[: -(node.level - 1)]
        return ".".join([*parts, *([node.module] if node.module else [])])

    def names(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = absolute(node)
        return [base, *(f"{base}.{a.name}" for a in node.names)]

    def walk(node: ast.AST, function: str | None
             ) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if any(n == TESTING or n.startswith(TESTING + ".") for n in names(child)):
                    yield child, function
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, child.name)
            else:
                yield from walk(child, function)

    yield from walk(tree, None)


def test_production_code_does_not_import_ktstr_testing() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        rel = path.relative_to(PACKAGE_ROOT)
        if rel.parts[0] == "testing":
            continue
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, function in _testing_imports(tree, module, is_package):
            if function is None:
                found.append(f"ktstr/{rel}:{node.lineno}: at module level")
            elif (rel.as_posix(), function) not in LAZY_ALLOWED:
                found.append(f"ktstr/{rel}:{node.lineno}: in {function}(), not in "
                             "LAZY_ALLOWED")
    assert not found, ("production code imports the test fakes (ktstr.testing); only "
                       "the worker's --runner scripted may, lazily:\n" + "\n".join(found))


@pytest.mark.parametrize(("source", "where"), [
    pytest.param("import ktstr.testing\n", [None], id="module level"),
    pytest.param("from ktstr.testing.runner import X\n", [None], id="submodule"),
    pytest.param("from ktstr import testing\n", [None], id="from the package"),
    pytest.param("from .. import testing\n", [None], id="relative"),
    pytest.param("if True:\n    import ktstr.testing\n", [None], id="under an if"),
    pytest.param("def f():\n    from ktstr.testing import X\n", ["f"], id="in a function"),
    pytest.param("class C:\n    def m(self):\n        import ktstr.testing.kernel\n",
                 ["m"], id="in a method"),
    pytest.param("import ktstr.testkit\nfrom ktstr import testkit\n", [], id="not it"),
])
def test_the_scan_sees_every_kind_of_import(source: str, where: list[str | None]) -> None:
    found = _testing_imports(ast.parse(source), "ktstr.worker.mod", is_package=False)
    assert [function for _, function in found] == where


def _fake_tools(d: Path) -> Path:
    d.mkdir(parents=True)
    for tool in SERVER_TOOLS:
        (d / tool).write_text("#!/bin/sh\n")
        (d / tool).chmod(0o755)
    return d


def test_postgres_is_found_on_path_then_in_the_newest_version(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    for version in ("9.6", "15", "17", "16"):
        _fake_tools(root / version / "bin")
    (root / "18" / "bin").mkdir(parents=True)  # a client-only install: no server
    on_path = _fake_tools(tmp_path / "path")
    dirs = candidate_bin_dirs(f"{tmp_path / 'empty'}:{on_path}", debian_root=root)
    assert dirs[:2] == [tmp_path / "empty", on_path]
    assert [d.parent.name for d in dirs[2:]] == ["18", "17", "16", "15", "9.6"]
    assert find_server_bin_dir(dirs) == on_path
    assert find_server_bin_dir(candidate_bin_dirs("", debian_root=root)) == root / "17" / "bin"


def test_missing_postgres_names_where_it_looked_and_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(InfraError) as info:
        find_server_bin_dir(candidate_bin_dirs(str(tmp_path / "bin"),
                                               debian_root=tmp_path / "none"))
    message = str(info.value)
    assert str(tmp_path / "bin") in message and "/usr/lib/postgresql/*/bin" in message
    assert "initdb" in message and "scripts/setup.sh" in message
