"""Debian package version ordering (the dpkg algorithm), pure.

``debian_version_key("7.3~rc7-1~exp1") < debian_version_key("7.3.4-1~bpo13+1")``.
"""

from __future__ import annotations

import functools
import re

_EPOCH = re.compile(r"^(\d+):")


def _char_order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    """Compare an upstream version or a Debian revision, dpkg style."""
    i = j = 0
    while i < len(a) or j < len(b):
        # non-digit prefix
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ca = _char_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            cb = _char_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            if i < len(a) and not a[i].isdigit():
                i += 1
            if j < len(b) and not b[j].isdigit():
                j += 1
        # digit run
        si = i
        while i < len(a) and a[i].isdigit():
            i += 1
        sj = j
        while j < len(b) and b[j].isdigit():
            j += 1
        na = int(a[si:i] or "0")
        nb = int(b[sj:j] or "0")
        if na != nb:
            return -1 if na < nb else 1
    return 0


def _split(version: str) -> tuple[int, str, str]:
    m = _EPOCH.match(version)
    epoch = int(m.group(1)) if m else 0
    rest = version[m.end():] if m else version
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        return epoch, rest, ""
    return epoch, upstream, revision


def compare_debian_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b``."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


debian_version_key = functools.cmp_to_key(compare_debian_versions)
