"""Helpers for VM integration tests."""

from __future__ import annotations

from ktstr.kernel.cache import CachedKernel
from ktstr.kernel.resolve import resolve_kernel


def kernel(spec: str) -> CachedKernel:
    """A real cached kernel (fetched from the Debian archive on first use)."""
    return resolve_kernel(spec)
