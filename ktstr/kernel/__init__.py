"""Kernels: spec parsing and matching, fetching, the local cache."""

from ktstr.kernel.id import KernelId, KernelKind, kernel_filter_accepts

__all__ = ["KernelId", "KernelKind", "kernel_filter_accepts"]
