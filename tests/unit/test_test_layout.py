"""The test tree itself: CI collects every tier in one pytest run, and pytest's default
(prepend) import mode imports each test module by its basename, so two test modules with
one basename in different folders make the second fail to collect (seen in CI:
tests/unit/test_kernel_build.py and tests/integration/test_kernel_build.py)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name == "conftest.py" or "__pycache__" in path.parts:
            continue
        seen[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"


def test_the_top_level_data_folders_are_symlinks_into_the_package() -> None:
    """README: ``initramfs kernels schedulers payloads`` at the top are symlinks to the
    folders in ``ktstr/`` (the wheel carries the real ones). A copy of the tree that
    lost the links left four one-line files holding the link targets instead."""
    root = TESTS.parent
    for name in ("initramfs", "kernels", "schedulers", "payloads"):
        link = root / name
        assert link.is_symlink(), f"{name} must be a symlink to ktstr/{name}"
        assert link.resolve() == (root / "ktstr" / name).resolve() and link.is_dir()
