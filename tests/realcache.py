"""The real ktstr cache, captured before any test isolates HOME/XDG."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_CACHE = Path(
    os.environ.get("KTSTR_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ktstr"
)


def use_real_cache(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ktstr at the real cache, so kernels and builds are fetched once."""
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(REAL_CACHE))
    return REAL_CACHE
