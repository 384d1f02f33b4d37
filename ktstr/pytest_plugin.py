"""The ktstr pytest plugin (entry point ``pytest11``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ktstr: a test that boots a VM through ktstr")
