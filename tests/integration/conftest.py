"""Integration tier: real kernels, real QEMU, real databases.

These tests use the *real* ktstr cache (``~/.cache/ktstr`` or ``$KTSTR_CACHE_DIR`` as
it was when pytest started) so that kernels and scheduler builds are fetched once and
reused across runs; everything else stays isolated per test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REAL_CACHE = Path(
    os.environ.get("KTSTR_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ktstr"
)


@pytest.fixture(autouse=True)
def _real_cache(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(_REAL_CACHE))
    return _REAL_CACHE
