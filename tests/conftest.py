"""Shared fixtures for every test tier."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point HOME, XDG dirs and the ktstr cache at a per-test temporary directory, so no
    test reads or writes the real user's files."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(home / ".cache" / "ktstr"))
    for var in ("KTSTR_DECLARATIONS", "KTSTR_VCPU_OVERCOMMIT"):
        monkeypatch.delenv(var, raising=False)
    return home


#: markers of tests that run only when a -m expression names them
ON_DEMAND_MARKERS = ("kernel_build",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``kernel_build`` compile a whole kernel (tens of minutes on 2 cores):
    skipped unless the -m expression names the marker (``pytest -m kernel_build``)."""
    markexpr = config.getoption("markexpr") or ""
    for marker in ON_DEMAND_MARKERS:
        if marker in markexpr:
            continue
        skip = pytest.mark.skip(reason=f"on demand: run with -m {marker}")
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)
