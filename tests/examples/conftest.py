"""The examples boot real kernels: they use the real ktstr cache (see tests/realcache.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.realcache import use_real_cache


@pytest.fixture(autouse=True)
def _real_cache(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_real_cache(monkeypatch)
