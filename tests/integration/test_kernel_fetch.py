"""Real Debian kernels through the private apt (uses the real ~/.cache/ktstr)."""

from __future__ import annotations

import time

import pytest

from ktstr.kernel.cache import EntryState, KernelCache
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.resolve import resolve_kernel

pytestmark = pytest.mark.archive


def test_fetch_72_has_sched_ext_and_is_reused() -> None:
    (first,) = Fetcher().fetch("7.2")
    assert first.version.startswith("7.2.") and first.source.value == "debian"
    assert first.config_facts.value("SCHED_CLASS_EXT") == "y"
    assert first.config_facts.value("DEBUG_INFO_BTF") == "y"
    assert first.sched_ext
    assert first.image_path.stat().st_size > 5_000_000
    assert first.modules_dir is not None
    assert any(first.modules_dir.glob("kernel/fs/9p/9p.ko*"))
    status = KernelCache().status(first.key)
    assert status is not None and status.state is EntryState.OK

    started = time.monotonic()
    again = resolve_kernel(first.version)
    assert again.entry_dir == first.entry_dir
    assert time.monotonic() - started < 10  # no download the second time


def test_fetch_612_is_eevdf_only() -> None:
    (k,) = Fetcher().fetch("6.12")
    assert k.version.startswith("6.12.") and not k.sched_ext
