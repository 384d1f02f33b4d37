"""Checks of rendered artefacts: golden files and shell syntax.

``assert_golden(text, path)`` compares with a stored file and, when
``KTSTR_UPDATE_GOLDEN=1``, rewrites it instead. ``check_shell_syntax(script)`` runs
``sh -n`` and ``busybox sh -n`` (the shell the guest really runs) over a script.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

UPDATE_ENV = "KTSTR_UPDATE_GOLDEN"
SHELLS: tuple[tuple[str, ...], ...] = (("sh",), ("busybox", "sh"))


def assert_golden(actual: str, golden: Path) -> None:
    """Fail with a unified diff when ``actual`` differs from the golden file."""
    if os.environ.get(UPDATE_ENV) == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
        return
    if not golden.exists():
        raise AssertionError(f"golden file {golden} is missing; run the tests with {UPDATE_ENV}=1")
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(golden),
                tofile="rendered",
            )
        )
        raise AssertionError(
            f"rendered output differs from {golden} (regenerate with {UPDATE_ENV}=1):\n{diff}"
        )


def check_shell_syntax(script: str, shells: Sequence[Sequence[str]] = SHELLS) -> None:
    """Fail when any of ``shells`` (each run with ``-n``) rejects ``script``."""
    with tempfile.TemporaryDirectory(prefix="ktstr-sh-") as tmp:
        path = Path(tmp) / "script.sh"
        path.write_text(script)
        for shell in shells:
            if shutil.which(shell[0]) is None:
                raise AssertionError(f"{shell[0]} is not installed; run scripts/setup.sh")
            done = subprocess.run(
                [*shell, "-n", str(path)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise AssertionError(
                    f"{' '.join(shell)} -n rejects the script: {done.stderr.strip()}\n"
                    + _numbered(script)
                )


def _numbered(script: str) -> str:
    return "".join(f"{n:4} {line}" for n, line in enumerate(script.splitlines(True), 1))
