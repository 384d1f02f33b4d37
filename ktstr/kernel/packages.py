"""Debian kernel packages: names, layouts and the kernels an archive offers (pure).

Two layouts (LAB.md §2):

- ``split`` (7.x, and 6.19 onwards): ``linux-binary-ABI-FLAVOUR`` (vmlinuz),
  ``linux-base-ABI-FLAVOUR`` (config, System.map, modules.builtin*),
  ``linux-modules-ABI-FLAVOUR`` (the ``.ko.xz`` tree).
- ``image`` (6.x): ``linux-image-ABI-FLAVOUR-unsigned`` holds all of it.

``ABI-FLAVOUR`` is the kernel release (``uname -r``), e.g. ``7.2.13+deb14-amd64``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence

from ktstr.declare.base import Frozen
from ktstr.errors import UserError
from ktstr.kernel.archive import ArchiveIndex, PackageVersion
from ktstr.kernel.debver import debian_version_key
from ktstr.kernel.id import upstream_version, version_key


class Flavour(enum.StrEnum):
    GENERIC = "amd64"
    CLOUD = "cloud-amd64"
    RT = "rt-amd64"


class PackageLayout(enum.StrEnum):
    SPLIT = "split"
    IMAGE = "image"


_FLAVOURS = "|".join(re.escape(f.value) for f in Flavour)
_SPLIT = re.compile(rf"^linux-binary-(?P<abi>\d+\.\d+\S*?)-(?P<flavour>{_FLAVOURS})$")
_IMAGE = re.compile(rf"^linux-image-(?P<abi>\d+\.\d+\S*?)-(?P<flavour>{_FLAVOURS})-unsigned$")

#: prefixes whose package names are listed to find kernels
NAME_PREFIXES = ("linux-binary-", "linux-image-")


class ArchiveKernel(Frozen):
    """A kernel the archive offers: one upstream version in one flavour."""

    version: str
    release: str
    debian_version: str
    suite: str
    flavour: Flavour
    layout: PackageLayout

    @property
    def package_names(self) -> list[str]:
        if self.layout is PackageLayout.SPLIT:
            return [f"linux-{part}-{self.release}" for part in ("binary", "base", "modules")]
        return [f"linux-image-{self.release}-unsigned"]

    @property
    def packages(self) -> list[PackageVersion]:
        return [PackageVersion(package=p, version=self.debian_version, suite=self.suite)
                for p in self.package_names]

    @property
    def key(self) -> str:
        """The cache key: the kernel release."""
        return self.release


def parse_package_name(name: str) -> tuple[str, Flavour, PackageLayout] | None:
    """``linux-binary-7.2.13+deb14-amd64`` -> (release, flavour, layout); else None."""
    for pattern, layout in ((_SPLIT, PackageLayout.SPLIT), (_IMAGE, PackageLayout.IMAGE)):
        m = pattern.match(name)
        if m:
            flavour = Flavour(m.group("flavour"))
            return f"{m.group('abi')}-{flavour.value}", flavour, layout
    return None


def candidate_packages(names: Iterable[str], flavour: Flavour) -> list[str]:
    """The image-carrying package names of ``flavour`` among ``names``."""
    out = []
    for name in names:
        parsed = parse_package_name(name)
        if parsed is not None and parsed[1] is flavour:
            out.append(name)
    return sorted(out)


def kernels_from_versions(versions: Sequence[PackageVersion],
                          flavour: Flavour) -> list[ArchiveKernel]:
    """One ``ArchiveKernel`` per upstream version (the highest Debian version wins),
    sorted oldest first."""
    best: dict[str, ArchiveKernel] = {}
    for pv in versions:
        parsed = parse_package_name(pv.package)
        if parsed is None or parsed[1] is not flavour:
            continue
        release, _, layout = parsed
        try:
            upstream = upstream_version(pv.version)
        except UserError:
            continue
        kernel = ArchiveKernel(version=upstream, release=release, debian_version=pv.version,
                               suite=pv.suite, flavour=flavour, layout=layout)
        old = best.get(upstream)
        if old is None or debian_version_key(kernel.debian_version) > debian_version_key(
                old.debian_version):
            best[upstream] = kernel
    return sorted(best.values(), key=lambda k: version_key(k.version))


def available_kernels(index: ArchiveIndex, flavour: Flavour = Flavour.GENERIC
                      ) -> list[ArchiveKernel]:
    """Every kernel ``index`` offers in ``flavour``, oldest first."""
    names: list[str] = []
    for prefix in NAME_PREFIXES:
        names += index.package_names(prefix)
    return kernels_from_versions(index.versions(candidate_packages(names, flavour)), flavour)
