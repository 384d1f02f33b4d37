"""Private apt configuration, archive output parsing and Debian version order (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr.errors import UserError
from ktstr.kernel.apt import (
    MAIN_SUITES,
    AptLayout,
    Mirrors,
    apt_argv,
    mirrors_from_stanzas,
    parse_deb822_sources,
    parse_one_line_sources,
    read_system_sources,
    render_sources,
)
from ktstr.kernel.archive import parse_control_sizes, parse_madison, update_problems
from ktstr.kernel.debver import compare_debian_versions, debian_version_key

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_mirrors() -> None:
    mirrors = mirrors_from_stanzas(parse_deb822_sources(DEB822))
    assert mirrors == Mirrors(main="http://mirror.invalid/debian",
                              security="http://mirror.invalid/debian-security")


def test_one_line_sources() -> None:
    text = ("deb [arch=amd64 signed-by=/k.gpg] http://m.invalid/debian bookworm main\n"
            "# deb http://other.invalid/debian sid main\n"
            "deb-src http://src.invalid/debian bookworm main\n")
    stanzas = parse_one_line_sources(text)
    assert stanzas == [{"Types": "deb", "URIs": "http://m.invalid/debian",
                        "Suites": "bookworm", "Components": "main"}]
    assert mirrors_from_stanzas(stanzas) == Mirrors(main="http://m.invalid/debian")


def test_read_system_sources_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(DEB822)
    assert read_system_sources([tmp_path]).main == "http://mirror.invalid/debian"


def test_no_debian_sources_points_at_path_specs(tmp_path: Path) -> None:
    (tmp_path / "other.sources").write_text("Types: deb\nURIs: http://x.invalid/\n"
                                            "Suites: jammy\nComponents: main\n")
    with pytest.raises(UserError, match="pass kernels as paths"):
        read_system_sources([tmp_path])


def test_render_sources_covers_all_suites_with_keyring() -> None:
    text = render_sources(Mirrors(main="http://mirror.invalid/debian"), Path("/k.gpg"))
    stanzas = parse_deb822_sources(text)
    suites = [s for st in stanzas for s in st["Suites"].split()]
    assert suites == [*MAIN_SUITES, "bookworm-security"]
    assert stanzas[1]["URIs"] == "http://mirror.invalid/debian-security"
    assert all(st["Signed-By"] == "/k.gpg" and st["Architectures"] == "amd64" for st in stanzas)


def test_apt_argv_confines_every_directory(tmp_path: Path) -> None:
    layout = AptLayout(root=tmp_path / "apt")
    argv = apt_argv(layout, "apt-get", "update")
    assert argv[0] == "apt-get" and argv[-1] == "update"
    opts = dict(a.split("=", 1) for a in argv[1:-1] if "=" in a)
    for key in ("Dir::State", "Dir::State::Lists", "Dir::State::status", "Dir::Cache",
                "Dir::Etc::SourceList", "Dir::Etc::SourceParts", "Dir::Etc::Preferences",
                "Dir::Etc::PreferencesParts", "Dir::Etc::Parts", "Dir::Etc::TrustedParts"):
        assert opts[key].startswith(str(tmp_path / "apt")), key
    assert opts["APT::Architecture"] == "amd64"


def test_materialize_is_idempotent(tmp_path: Path) -> None:
    layout = AptLayout(root=tmp_path)
    mirrors = Mirrors(main="http://mirror.invalid/debian")
    layout.materialize(mirrors, Path("/k.gpg"))
    first = layout.sources_file.read_text()
    layout.materialize(mirrors, Path("/k.gpg"))
    assert layout.sources_file.read_text() == first
    assert (tmp_path / "state" / "status").read_text() == ""


def test_parse_madison() -> None:
    text = (
        "linux-binary-7.3-amd64 | 7.3~rc7-1~exp1 | http://m.invalid/debian "
        "experimental/main amd64 Packages\n"
        "linux-source-7.2 |   7.2.13-1 | http://m.invalid/debian sid/main amd64 Packages\n"
        "garbage line\n"
    )
    got = parse_madison(text)
    assert [(v.package, v.version, v.suite) for v in got] == [
        ("linux-binary-7.3-amd64", "7.3~rc7-1~exp1", "experimental"),
        ("linux-source-7.2", "7.2.13-1", "sid"),
    ]


def test_parse_control_sizes() -> None:
    text = "Package: a\nVersion: 1\nSize: 10\nDescription: x\n more\n\nPackage: b\nVersion: 2\n"
    assert parse_control_sizes(text) == {"a=1": 10}


def test_update_problems_flags_signatures_and_unreachable() -> None:
    out = ("Get:1 http://m.invalid/debian sid InRelease [193 kB]\n"
           "Err:2 http://m.invalid/debian trixie InRelease\n"
           "W: GPG error: http://m.invalid/debian trixie InRelease: NO_PUBKEY 123\n"
           "Reading package lists...\n")
    assert update_problems(out) == [
        "Err:2 http://m.invalid/debian trixie InRelease",
        "W: GPG error: http://m.invalid/debian trixie InRelease: NO_PUBKEY 123",
    ]
    assert update_problems("Get:1 x\nFetched 31 MB in 3s\nReading package lists...\n") == []


@pytest.mark.parametrize(("a", "b", "want"), [
    ("7.3~rc7-1~exp1", "7.3-1", -1),
    ("7.3.4-1~bpo13+1", "7.3.4-1", -1),
    ("6.12.107-1~deb12u1", "6.12.107-1", -1),
    ("7.2.13-1", "7.2.9-1", 1),
    ("1:1.0-1", "2.0-1", 1),
    ("1.0", "1.0-0", 0),
    ("1.0a", "1.0", 1),
])
def test_debian_version_order(a: str, b: str, want: int) -> None:
    assert compare_debian_versions(a, b) == want
    assert compare_debian_versions(b, a) == -want


def test_debian_version_key_sorts() -> None:
    got = sorted(["7.3.4-1", "7.3~rc7-1", "7.2.13-1", "7.2.9-1"], key=debian_version_key)
    assert got == ["7.2.9-1", "7.2.13-1", "7.3~rc7-1", "7.3.4-1"]
