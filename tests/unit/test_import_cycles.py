"""Guard: no import cycle among ktstr's own modules (issue 17, structure item 3).

The graph has an edge A -> B for every ``import``/``from ... import`` in A that names
module B of the package, wherever the statement sits: at module level, inside a function,
a method, a ``try`` or a conditional. A function-level import still makes A depend on B
at run time, so hiding an import in a function does not break a cycle. Only imports
under ``if TYPE_CHECKING:`` are left out: they never run.

``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg``. Relative imports are resolved against the importing module. Importing
``a.b.c`` is an edge to ``a.b.c`` only, not to its parent packages: a package's
``__init__`` re-exporting its submodules is how packages are built, not a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import ktstr

PACKAGE_ROOT = Path(ktstr.__file__).parent


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under package ``root``."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement below ``node`` that can run (not under TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from runtime_imports(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from runtime_imports(child)


def _absolute(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = importer.split(".")
    if not is_package:
        parts = parts[:-1]  # a module's relative imports start from its package
    if node.level > 1:
        parts = parts[:-(node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is one of ``modules``, else its nearest enclosing one."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    edges: list[Edge] = []
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in runtime_imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [_known(alias.name, modules) for alias in node.names]
            else:
                base = _absolute(importer, is_package, node)
                targets = [_known(f"{base}.{alias.name}" if base else alias.name, modules)
                           for alias in node.names]
            for target in targets:
                if target is not None and target != importer:
                    edges.append(Edge(importer, target, node.lineno))
    return edges


def cycles(modules: dict[str, Path], edges: list[Edge]) -> list[list[str]]:
    """The groups of two or more modules that import each other, directly or not."""
    out: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        out[e.importer].add(e.imported)

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in out[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reach = {m: reachable(m) for m in modules}
    groups: list[list[str]] = []
    done: set[str] = set()
    for m in modules:
        if m in done or m not in reach[m]:
            continue
        group = sorted(o for o in reach[m] if m in reach[o])
        done.update(group)
        groups.append(group)
    return groups


def describe(group: list[str], edges: list[Edge], modules: dict[str, Path]) -> str:
    members = set(group)
    lines = [f"cycle: {' <-> '.join(group)}"]
    for e in sorted(set(edges), key=lambda e: (e.importer, e.line, e.imported)):
        if e.importer in members and e.imported in members:
            where = modules[e.importer].relative_to(PACKAGE_ROOT.parent)
            lines.append(f"    {where}:{e.line} imports {e.imported}")
    return "\n".join(lines)


def test_ktstr_has_no_import_cycle() -> None:
    modules = module_names(PACKAGE_ROOT)
    edges = import_edges(modules)
    found = cycles(modules, edges)
    report = "\n".join(describe(g, edges, modules) for g in found)
    print(report)
    assert not found, (
        f"{len(found)} import cycle(s) in ktstr/; move what both sides need into a module "
        f"both can import (a function-level import does not break a cycle):\n{report}")


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return module_names(root / "pkg")


@pytest.mark.parametrize(("files", "want"), [
    pytest.param({"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n",
                  "pkg/b.py": "def f():\n    from . import a\n"},
                 [["pkg.a", "pkg.b"]], id="function-level relative import"),
    pytest.param({"pkg/__init__.py": "", "pkg/sub/__init__.py": "",
                  "pkg/sub/a.py": "from ..b import thing\n",
                  "pkg/b.py": "class C:\n    def m(self):\n        import pkg.sub.a\n"},
                 [["pkg.b", "pkg.sub.a"]], id="two-level relative import, method import"),
    pytest.param({"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import x\n",
                  "pkg/b.py": "from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from pkg.a import y\n"},
                 [], id="TYPE_CHECKING imports are left out"),
    pytest.param({"pkg/__init__.py": "from pkg.a import f\n",
                  "pkg/a.py": "from pkg.b import g\n", "pkg/b.py": "x = 1\n"},
                 [], id="a package re-exporting its modules"),
])
def test_the_graph_sees_every_kind_of_import(tmp_path: Path, files: dict[str, str],
                                             want: list[list[str]]) -> None:
    modules = _write(tmp_path, files)
    assert cycles(modules, import_edges(modules)) == want
