"""ktstr as a scheduler project would get it: a wheel in a fresh venv, outside the checkout.

The wheel is built from a copy of the checkout (so a stale ``build/`` here cannot leak
into it, and the checkout is left untouched), installed without extras into a venv in a
temporary directory (its dependencies come from the package index through pip), and
every command runs from a directory outside the checkout, so nothing can be found next
to the source tree: guest templates, agent sources, the example declarations all have to
come from the installed package. Kernels and scheduler builds come from the real cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

CHECKOUT = Path(__file__).resolve().parents[2]
#: not part of the wheel's sources; copying them would only cost time
_SKIP = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__",
                               ".mypy_cache", ".ruff_cache", ".pytest_cache", "ktstr-results")

PYTEST_FILE = '''
from ktstr import Ctx, ktstr_test
from ktstr.schedulers.examples import SCX_SIMPLE


@ktstr_test(scheduler=SCX_SIMPLE, llcs=1, cores=2, duration_s=2)
def test_scx_simple_from_the_wheel(ctx: Ctx) -> None:
    assert ctx.run().sched_ops == "simple"
'''


def _run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (no extras) installed; one per module."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(CHECKOUT, src, symlinks=True, ignore=_SKIP)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                  str(root / "dist"), str(src)], cwd=root)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("ktstr-*.whl")
    env = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(env)], cwd=root)
    assert made.returncode == 0, made.stderr
    installed = _run([str(env / "bin" / "pip"), "install", "-q", str(wheel)], cwd=root)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return env


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the checkout."""
    assert not tmp_path.resolve().is_relative_to(CHECKOUT)
    return tmp_path


def test_the_package_comes_from_the_venv_without_the_service(venv: Path,
                                                             outside: Path) -> None:
    probe = _run([str(venv / "bin" / "python"), "-c",
                  "import ktstr, importlib.util; print(ktstr.__file__); "
                  "print(importlib.util.find_spec('schedulers'), "
                  "importlib.util.find_spec('fastapi'))"], cwd=outside)
    assert probe.returncode == 0, probe.stderr
    location, specs = probe.stdout.splitlines()
    assert Path(location).is_relative_to(venv)
    assert specs == "None None"  # no top-level 'schedulers'; service deps are an extra
    sched = _run([str(venv / "bin" / "ktstr"), "sched", "run"], cwd=outside)
    assert sched.returncode != 0
    assert "pip install 'ktstr[service]'" in sched.stderr


def test_shell_boots_from_the_wheel(venv: Path, outside: Path) -> None:
    done = _run([str(venv / "bin" / "ktstr"), "shell", "--kernel", "7.2", "--topology",
                 "1,1,1,1", "--exec", "true"], cwd=outside)
    assert done.returncode == 0, done.stdout + done.stderr


def test_run_scx_simple_from_the_wheel(venv: Path, outside: Path) -> None:
    done = _run([str(venv / "bin" / "ktstr"), "run", "--kernel", "7.2", "--scheduler",
                 "scx_simple", "--topology", "1,1,2,1", "--duration", "2"], cwd=outside)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sched_attached  ops=simple" in done.stdout
    assert done.stdout.rstrip().endswith("PASS")


def test_ktstr_test_file_under_plain_pytest(venv: Path, outside: Path) -> None:
    (outside / "test_from_wheel.py").write_text(PYTEST_FILE)
    done = _run([str(venv / "bin" / "pytest"), "-p", "no:cacheprovider", "-q",
                 "--ktstr-kernel", "7.2", "test_from_wheel.py"], cwd=outside)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
