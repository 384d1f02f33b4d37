"""Kernel specs: ``KernelId.parse`` and the matching rules of a scheduler's ``kernels``.

Forms, tried in this order:

- ``git+URL#REF`` -> ``Git``
- ``A..B`` or ``A..=B`` with version-shaped ends -> ``Range`` (inclusive at both ends)
- contains ``/`` or starts with ``.`` or ``~`` -> ``Path``
- version-shaped (``7.2``, ``7.2.13``, ``7.3-rc7``, ``7.3~rc7``) -> ``Version``
- anything else -> ``CacheKey``
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

from pydantic import Field

from ktstr.declare.base import Frozen
from ktstr.errors import UserError

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[-~]rc(\d+))?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class KernelKind(enum.StrEnum):
    VERSION = "version"
    RANGE = "range"
    PATH = "path"
    CACHE_KEY = "cache_key"
    GIT = "git"


def is_version(text: str) -> bool:
    return bool(_VERSION.match(text))


def normalize_version(text: str) -> str:
    """``7.3~rc7`` -> ``7.3-rc7``; other versions unchanged."""
    m = _VERSION.match(text)
    if not m:
        raise UserError(f"{text!r} is not a kernel version (expected e.g. 7.2, 7.2.13, 7.3-rc7)")
    major, minor, patch, rc = m.groups()
    out = f"{major}.{minor}" + (f".{patch}" if patch is not None else "")
    return out + (f"-rc{rc}" if rc is not None else "")


def version_key(text: str) -> tuple[int, int, int, int, int]:
    """Sort key: (major, minor, patch, is_release, rc); ``7.3-rc7 < 7.3 == 7.3.0 < 7.3.1``.

    Debian versions such as ``7.2.13+deb14-amd64`` are reduced to their upstream part.
    """
    base = upstream_version(text)
    m = _VERSION.match(base)
    if not m:
        raise UserError(f"{text!r} is not a kernel version")
    major, minor, patch, rc = m.groups()
    return (
        int(major),
        int(minor),
        int(patch or 0),
        0 if rc is not None else 1,
        int(rc or 0),
    )


def upstream_version(text: str) -> str:
    """The upstream kernel version at the start of ``text`` (``7.2.13+deb14-amd64`` ->
    ``7.2.13``, ``7.3~rc7-1`` -> ``7.3-rc7``)."""
    m = re.match(r"^(\d+\.\d+(?:\.\d+)?(?:[-~]rc\d+)?)", text)
    if not m:
        raise UserError(f"{text!r} does not start with a kernel version")
    return normalize_version(m.group(1))


def sanitize_label(text: str) -> str:
    """A label safe for file names and test ids."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


class KernelId(Frozen):
    """A parsed kernel spec."""

    kind: KernelKind
    raw: str = Field(min_length=1)
    version: str | None = None
    start: str | None = None
    end: str | None = None
    path: str | None = None
    url: str | None = None
    ref: str | None = None

    @classmethod
    def parse(cls, spec: str) -> KernelId:
        text = spec.strip()
        if not text:
            raise UserError(
                "empty kernel spec: give a version (7.2), a range (7.2..=7.3), "
                "a path, a cache key or git+URL#REF"
            )
        if text.startswith("git+"):
            body = text[len("git+") :]
            url, sep, ref = body.partition("#")
            if not sep or not url or not ref:
                raise UserError(f"bad git kernel spec {spec!r}: use git+URL#REF")
            return cls(kind=KernelKind.GIT, raw=text, url=url, ref=ref)
        if ".." in text:
            inclusive = "..=" in text
            a, _, b = text.partition("..=" if inclusive else "..")
            if is_version(a) and is_version(b):
                start, end = normalize_version(a), normalize_version(b)
                if version_key(start) > version_key(end):
                    raise UserError(f"bad kernel range {spec!r}: {start} is after {end}")
                return cls(kind=KernelKind.RANGE, raw=text, start=start, end=end)
        if "/" in text or text.startswith((".", "~")):
            return cls(kind=KernelKind.PATH, raw=text, path=text)
        if is_version(text):
            return cls(kind=KernelKind.VERSION, raw=text, version=normalize_version(text))
        return cls(kind=KernelKind.CACHE_KEY, raw=text)

    @property
    def label(self) -> str:
        """Sanitized label used in cell ids and for label matching."""
        if self.kind is KernelKind.VERSION:
            assert self.version is not None
            return self.version
        if self.kind is KernelKind.RANGE:
            return f"{self.start}..={self.end}"
        return sanitize_label(self.raw)

    def contains_version(self, version: str) -> bool:
        """For a Range: whether ``version`` lies in it. An end given with fewer parts
        covers its whole series: ``7.2..=7.3`` includes ``7.3.4``."""
        if self.kind is not KernelKind.RANGE:
            raise ValueError("contains_version() is for ranges")
        assert self.start is not None and self.end is not None
        try:
            key = version_key(version)
        except UserError:
            return False
        end_parts = len(self.end.split("-")[0].split("."))
        end_key = version_key(self.end)
        if key < version_key(self.start):
            return False
        if end_parts == 2 and "-rc" not in self.end:
            return key[:2] <= end_key[:2]
        return key <= end_key

    def matches(self, entry: str) -> bool:
        """Whether a kernel-list entry (its raw spec or label) passes this filter."""
        entry = entry.strip()
        entry_label = sanitize_label(entry)
        if self.kind is KernelKind.VERSION:
            assert self.version is not None
            if entry in (self.raw, self.version) or entry_label in (
                self.version,
                sanitize_label(self.raw),
            ):
                return True
            # a version filter also matches a Debian-style label of the same version
            try:
                return upstream_version(entry) == self.version
            except UserError:
                return False
        if self.kind is KernelKind.RANGE:
            try:
                return self.contains_version(upstream_version(entry))
            except UserError:
                return False
        return entry_label == self.label

    def __str__(self) -> str:
        return self.raw


def kernel_filter_accepts(filters: Iterable[str], entry: str) -> bool:
    """A scheduler's ``kernels`` list against a label: empty means no filter; else any
    entry matches. Prefer ``filter_accepts_kernel`` for a resolved kernel."""
    specs = [KernelId.parse(f) for f in filters]
    return not specs or any(s.matches(entry) for s in specs)


class ResolvedKernel(Frozen):
    """What a kernel filter is matched against: a kernel as it resolved, never the spec
    text the operator typed (a range's text says nothing about one kernel in it)."""

    version: str = Field(description="upstream version, e.g. 7.2.13 or 7.3-rc7")
    release: str = Field("", description="uname -r, e.g. 7.2.13+deb14-amd64")
    key: str = Field("", description="the kernel cache key")
    #: the path, cache key or git spec the kernel came from (not a version or range)
    source_spec: str = ""


def filter_matches_kernel(spec: KernelId, kernel: ResolvedKernel) -> bool:
    """The one matching rule of ``Scheduler.kernels`` and ``--kernel`` (docs/verifier.md):

    - a two-part version ``7.2`` matches every kernel of the 7.2 series (7.2.x, 7.2-rcN);
    - a longer version ``7.2.13`` or ``7.3-rc7`` matches that upstream version, whatever
      the distribution's revision (``7.2.13+deb14-amd64``);
    - a range ``A..B`` / ``A..=B`` matches versions inside it, both ends inclusive, an end
      with two parts covering its whole series;
    - a path, cache key or git spec matches by sanitized-label equality with the kernel's
      cache key, release or the spec it was resolved from.
    """
    if spec.kind is KernelKind.VERSION:
        assert spec.version is not None
        try:
            have = version_key(kernel.version)
        except UserError:
            return False
        want = version_key(spec.version)
        if "-rc" not in spec.version and len(spec.version.split(".")) == 2:
            return have[:2] == want[:2]
        return have == want
    if spec.kind is KernelKind.RANGE:
        return spec.contains_version(kernel.version)
    names = {sanitize_label(n) for n in (kernel.key, kernel.release, kernel.source_spec) if n}
    return spec.label in names


def filter_accepts_kernel(filters: Iterable[str], kernel: ResolvedKernel) -> bool:
    """A scheduler's ``kernels`` list against a resolved kernel: empty means no filter,
    else any entry matches (``filter_matches_kernel``)."""
    specs = [KernelId.parse(f) for f in filters]
    return not specs or any(filter_matches_kernel(s, kernel) for s in specs)
