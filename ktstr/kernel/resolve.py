"""Which kernel for a run: ``resolve_kernel`` and the cache look-ups it makes (matching a
spec against the archive is ``ktstr.kernel.match``).

``resolve_kernel(spec)`` is what ``ktstr run/shell/test`` call when they need one kernel:
explicit spec (fetched if needed) -> ``$KTSTR_KERNEL`` -> the newest cached kernel with
sched_ext -> a ``UserError`` with the exact ``ktstr kernel fetch`` command to run.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ktstr.errors import UserError
from ktstr.kernel.fetch import Fetcher
from ktstr.kernel.id import KernelId, KernelKind, version_key
from ktstr.kernel.match import is_series

if TYPE_CHECKING:
    from ktstr.kernel.cache import CachedKernel, KernelCache

log = logging.getLogger(__name__)

KERNEL_ENV = "KTSTR_KERNEL"
DEFAULT_FETCH = "7.2"


def missing_kernel_error() -> UserError:
    return UserError(
        "no kernel given and none cached with sched_ext. Fetch one:\n"
        f"    ktstr kernel fetch {DEFAULT_FETCH}\n"
        f"or pass --kernel SPEC, or set {KERNEL_ENV} (a version, path or cache key)"
    )


def default_cached(cache: KernelCache) -> CachedKernel | None:
    """The newest usable cached kernel with sched_ext."""
    usable = [k for k in cache.entries() if k.sched_ext]
    return max(usable, key=lambda k: k.sort_key) if usable else None


def resolve_kernel(spec: str | None = None, *, fetcher: Fetcher | None = None) -> CachedKernel:
    """One kernel for a run. A version that resolves to several kernels (a range) is an
    error here: runs take one kernel, sweeps call ``Fetcher.fetch`` themselves.

    A version already in the cache is used without touching the archive (``7.2`` = the
    newest cached 7.2.x); otherwise it is fetched.
    """
    fetcher = fetcher or Fetcher()
    chosen = spec or os.environ.get(KERNEL_ENV) or None
    if chosen is None:
        found = default_cached(fetcher.cache)
        if found is None:
            raise missing_kernel_error()
        log.info("using newest cached sched_ext kernel %s", found.key)
        return found
    kid = KernelId.parse(chosen)
    if kid.kind is KernelKind.VERSION:
        cached = cached_version(fetcher.cache, kid)
        if cached is not None:
            return cached
    kernels = fetcher.fetch(kid)
    if len(kernels) != 1:
        raise UserError(f"kernel spec {chosen!r} names {len(kernels)} kernels "
                        f"({', '.join(k.version for k in kernels)}); give one version")
    return kernels[0]


def cached_version(cache: KernelCache, kid: KernelId) -> CachedKernel | None:
    """The newest cached kernel satisfying a version spec, without asking the archive:
    ``7.2.13`` exactly, ``7.2`` the newest cached 7.2.x (``ktstr kernel fetch 7.2`` is the
    way to move to a newer one)."""
    assert kid.version is not None
    want = kid.version
    if is_series(want):
        matches = [k for k in cache.entries()
                   if version_key(k.version)[:2] == version_key(want)[:2]]
    else:
        matches = [k for k in cache.entries() if k.version == want]
    matches = [k for k in matches if k.flavour in (None, "amd64")]
    return max(matches, key=lambda k: k.sort_key) if matches else None


def naming_spec(kernel: CachedKernel, spec: str | None, cache: KernelCache) -> str:
    """The ``--kernel`` value that names exactly ``kernel`` again, for reproducers: its
    version when that resolves to it (``7.2.13``), else its cache key (a kernel built
    from a tree has the version of a Debian one), else, for a kernel outside the cache,
    the spec it was given."""
    if not kernel.in_cache:
        return spec or kernel.version
    try:
        same = cached_version(cache, KernelId.parse(kernel.version))
    except UserError:
        same = None
    return kernel.version if same is not None and same.key == kernel.key else kernel.key
