"""The core harness and the pytest plugin work without the optional extras.

Each check runs in a fresh interpreter where the service's and compare's modules cannot
be imported (``sys.modules[name] = None``), as after a plain ``pip install ktstr``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ktstr.errors import UserError
from ktstr.extras import EXTRAS, need_extra

_HIDE = [m for extra in ("service", "postgres", "compare") for m in EXTRAS[extra]]
_PRELUDE = f"import sys\nfor m in {_HIDE!r}:\n    sys.modules[m] = None\n"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _PRELUDE + code], capture_output=True,
                          text=True, timeout=60, check=False)


def _ktstr(*args: str) -> subprocess.CompletedProcess[str]:
    return _python(f"sys.argv = ['ktstr', *{list(args)!r}]\nfrom ktstr.cli import main\nmain()")


def test_core_and_plugin_import_without_extras() -> None:
    proc = _python("import ktstr.pytest_plugin, ktstr.testkit, ktstr.run.execute, "
                   "ktstr.cli.run, ktstr.cli.shell\n")
    assert proc.returncode == 0, proc.stderr


def test_help_lists_every_command_without_extras() -> None:
    proc = _ktstr("--help")
    assert proc.returncode == 0, proc.stderr
    assert "sched" in proc.stdout
    proc = _ktstr("sched", "--help")
    assert proc.returncode == 0, proc.stderr


def test_a_service_command_names_the_extra() -> None:
    proc = _ktstr("sched", "run")
    assert proc.returncode != 0
    assert "pip install 'ktstr[service]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_need_extra_names_the_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(UserError, match=r"\(psycopg is missing\): pip install 'ktstr\[postgres\]'"):
        need_extra("postgres")
