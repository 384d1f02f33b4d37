"""KernelId.parse forms and the matching rules of a scheduler's ``kernels`` filter."""

from __future__ import annotations

import re

import pytest

from ktstr import KernelId, UserError
from ktstr.kernel.id import (
    KernelKind,
    kernel_filter_accepts,
    normalize_version,
    sanitize_label,
    upstream_version,
    version_key,
)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("git+https://git.kernel.org/pub/scm/linux.git#v7.2", KernelKind.GIT),
        ("6.14..7.0", KernelKind.RANGE),
        ("6.14..=7.0", KernelKind.RANGE),
        ("7.2-rc1..=7.2", KernelKind.RANGE),
        ("/usr/src/linux", KernelKind.PATH),
        ("build/linux", KernelKind.PATH),
        ("./linux", KernelKind.PATH),
        ("../linux", KernelKind.PATH),
        ("~/linux", KernelKind.PATH),
        (".linux", KernelKind.PATH),
        ("7.2", KernelKind.VERSION),
        ("7.2.13", KernelKind.VERSION),
        ("7.3-rc7", KernelKind.VERSION),
        ("7.3~rc7", KernelKind.VERSION),
        ("6.14.2-tarball-x86_64-kc1a2b", KernelKind.CACHE_KEY),
        ("mainline", KernelKind.CACHE_KEY),
        ("7", KernelKind.CACHE_KEY),
        ("7.2..main", KernelKind.CACHE_KEY),
    ],
)
def test_parse_forms(spec: str, kind: KernelKind) -> None:
    k = KernelId.parse(spec)
    assert k.kind is kind
    assert k.raw == spec
    assert str(k) == spec


def test_git_parts() -> None:
    k = KernelId.parse("git+https://example.org/linux.git#for-next")
    assert (k.url, k.ref) == ("https://example.org/linux.git", "for-next")
    assert k.label == "git+https_example.org_linux.git_for-next"


@pytest.mark.parametrize("spec", ["git+https://x/linux.git", "git+#ref", "git+url#"])
def test_bad_git_spec(spec: str) -> None:
    with pytest.raises(
        UserError, match=re.escape(f"bad git kernel spec {spec!r}: use git+URL#REF")
    ):
        KernelId.parse(spec)


def test_range_ends_are_normalized_and_inclusive() -> None:
    for spec in ("6.14..7.0", "6.14..=7.0"):
        k = KernelId.parse(spec)
        assert (k.start, k.end) == ("6.14", "7.0")
        assert k.label == "6.14..=7.0"
    assert KernelId.parse("7.3~rc1..7.3").start == "7.3-rc1"


def test_reversed_range_is_rejected() -> None:
    with pytest.raises(UserError, match=r"bad kernel range '7\.0\.\.6\.14': 7\.0 is after 6\.14"):
        KernelId.parse("7.0..6.14")


@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_spec_is_rejected(spec: str) -> None:
    with pytest.raises(UserError, match="empty kernel spec: give a version"):
        KernelId.parse(spec)


def test_version_normalization() -> None:
    assert KernelId.parse("7.3~rc7").version == "7.3-rc7"
    assert normalize_version("7.2.13") == "7.2.13"
    assert upstream_version("7.2.13+deb14-amd64") == "7.2.13"
    assert upstream_version("7.3~rc7-1") == "7.3-rc7"
    with pytest.raises(UserError, match="not a kernel version"):
        normalize_version("seven")
    with pytest.raises(UserError, match="does not start with a kernel version"):
        upstream_version("linux-7.2")


def test_version_order() -> None:
    ordered = ["6.14-rc1", "6.14-rc7", "6.14", "6.14.2", "6.15", "7.0-rc1", "7.0", "7.0.5"]
    assert sorted(ordered, key=version_key) == ordered
    assert version_key("7.3") == version_key("7.3.0")


# -- matching (the seed's ``kernels`` field) ----------------------------------------------


def test_empty_filter_accepts_every_entry() -> None:
    for entry in ("6.1", "/some/path", "git+u#r", "key"):
        assert kernel_filter_accepts([], entry)


def test_version_matches_raw_or_sanitized_label() -> None:
    k = KernelId.parse("6.14.2")
    assert k.matches("6.14.2")
    assert k.matches(" 6.14.2 ")
    assert k.matches("6.14.2+deb14-amd64")  # a packaged build of the same release
    assert not k.matches("6.14.3")
    assert not k.matches("6.14")
    rc = KernelId.parse("7.3~rc7")
    assert rc.matches("7.3-rc7")  # sanitized/normalized label
    assert rc.matches("7.3~rc7")  # raw
    assert not rc.matches("7.3")


@pytest.mark.parametrize("spec", ["6.14..7.0", "6.14..=7.0"])
@pytest.mark.parametrize(
    ("entry", "inside"),
    [
        ("6.14", True),  # start, inclusive
        ("6.14.2", True),
        ("6.15", True),
        ("7.0", True),  # end, inclusive
        ("7.0.3", True),  # an end given as a series covers its stable releases
        ("7.0.3+deb14-amd64", True),
        ("6.13.9", False),
        ("6.14-rc7", False),  # before the 6.14 release
        ("7.1", False),
        ("7.1-rc1", False),
        ("/usr/src/linux", False),
        ("mainline", False),
    ],
)
def test_range_matches_by_version_inclusive_at_both_ends(
    spec: str, entry: str, inside: bool
) -> None:
    assert KernelId.parse(spec).matches(entry) is inside


def test_range_with_a_full_end_version_stops_there() -> None:
    k = KernelId.parse("7.0..=7.0.3")
    assert k.matches("7.0.3")
    assert not k.matches("7.0.4")
    rc = KernelId.parse("7.0..=7.1-rc2")
    assert rc.matches("7.1-rc2")
    assert not rc.matches("7.1-rc3")
    assert not rc.matches("7.1")


def test_contains_version_is_for_ranges() -> None:
    with pytest.raises(ValueError, match="for ranges"):
        KernelId.parse("7.0").contains_version("7.0")


@pytest.mark.parametrize(
    ("spec", "same", "different"),
    [
        ("/usr/src/linux", "/usr/src/linux", "/usr/src/linux-next"),
        ("~/src/linux", "~/src/linux", "/root/src/linux"),
        ("6.14.2-tarball-x86_64-kc1a2b", "6.14.2-tarball-x86_64-kc1a2b", "6.14.2"),
        ("git+https://x.org/l.git#v7", "git+https://x.org/l.git#v7", "git+https://x.org/l.git#v8"),
    ],
)
def test_path_cache_key_and_git_match_by_sanitized_label(
    spec: str, same: str, different: str
) -> None:
    k = KernelId.parse(spec)
    assert k.label == sanitize_label(spec)
    assert k.matches(same)
    assert k.matches(sanitize_label(same))  # an entry given by its label
    assert not k.matches(different)


def test_sanitize_label() -> None:
    assert sanitize_label("/usr/src/linux") == "usr_src_linux"
    assert sanitize_label("a b//c") == "a_b_c"
    assert sanitize_label("///") == "_"


def test_filter_accepts_if_any_spec_matches() -> None:
    kernels = ["6.14", "6.15..=7.0", "/src/linux"]
    assert kernel_filter_accepts(kernels, "6.14")
    assert kernel_filter_accepts(kernels, "6.17.1")
    assert kernel_filter_accepts(kernels, "src_linux")
    assert not kernel_filter_accepts(kernels, "6.14.1")
    assert not kernel_filter_accepts(kernels, "7.1")
