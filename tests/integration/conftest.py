"""Integration tier: real kernels, real QEMU, real databases.

These tests use the *real* ktstr cache (``~/.cache/ktstr`` or ``$KTSTR_CACHE_DIR`` as
it was when pytest started) so that kernels and scheduler builds are fetched once and
reused across runs; everything else stays isolated per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.realcache import use_real_cache


@pytest.fixture(autouse=True)
def _real_cache(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_real_cache(monkeypatch)
