"""Every file the runtime reads ships in the wheel.

The wheel holds the ``ktstr*`` packages (folders with an ``__init__.py``) and, of other
files, only what ``[tool.setuptools.package-data]`` lists. A folder of modules without an
``__init__.py`` or a template missing from the list works from the checkout and breaks an
installed ktstr; the VM-tier ``test_wheel.py`` proves the real install.
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

import ktstr

PACKAGE = Path(ktstr.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def _tracked_files() -> list[PurePosixPath]:
    return sorted(PurePosixPath(p.relative_to(PACKAGE).as_posix())
                  for p in PACKAGE.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def _globbed(path: PurePosixPath, patterns: list[str]) -> bool:
    # setuptools globs per folder: "initramfs/*" takes initramfs/a, not initramfs/x/a.
    return any(len(PurePosixPath(g).parts) == len(path.parts) and path.match(g)
               for g in patterns)


def test_every_data_file_is_package_data() -> None:
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]["ktstr"]
    left_out = [str(p) for p in _tracked_files() if p.suffix != ".py" and not _globbed(p, patterns)]
    assert left_out == []


def test_every_module_folder_is_a_package() -> None:
    folders = {PACKAGE / p.parent for p in _tracked_files() if p.suffix == ".py"}
    assert sorted(str(f) for f in folders if not (f / "__init__.py").is_file()) == []
