"""A private apt configuration under the cache: never the system's apt state.

Everything apt reads or writes lives under ``paths.apt_dir()``: the sources list, the
package lists (``Dir::State``), the package cache (``Dir::Cache``), preferences and an
empty dpkg status file. The only thing taken from the system is the *mirror URI*, read
from the system's own ``/etc/apt/sources.list.d/*.sources`` or ``/etc/apt/sources.list``,
so no archive host name is ever written into the repository.

Signatures: every suite is verified with the system's Debian archive keyring
(``Signed-By``). Bookworm's ``debian-archive-keyring`` already carries the trixie keys
that sign trixie, sid and experimental; a suite whose signature does not verify makes
``update`` fail (see ``archive.py``), it is never trusted blindly.

Everything in this module is pure (text in, text or argv out) except ``read_system_sources``
and ``AptLayout.materialize``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.errors import UserError

#: suites the private configuration covers
MAIN_SUITES: tuple[str, ...] = (
    "bookworm",
    "bookworm-backports",
    "trixie",
    "trixie-backports",
    "sid",
    "experimental",
)
SECURITY_SUITES: tuple[str, ...] = ("bookworm-security",)
ARCH = "amd64"
SYSTEM_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SYSTEM_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


class Mirrors(Frozen):
    """The archive URIs taken from the system's sources."""

    main: str
    security: str | None = None


def parse_deb822_sources(text: str) -> list[dict[str, str]]:
    """Stanzas of a deb822 ``.sources`` file as ``{field: value}`` (comments dropped)."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
            continue
        if raw[0] in " \t" and key:
            current[key] += " " + raw.strip()
            continue
        key, _, value = raw.partition(":")
        key = key.strip()
        current[key] = value.strip()
    return stanzas


def parse_one_line_sources(text: str) -> list[dict[str, str]]:
    """``deb [opts] URI SUITE COMPONENTS`` lines in the same shape as deb822 stanzas."""
    out: list[dict[str, str]] = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            out.append({"Types": "deb", "URIs": words[1], "Suites": words[2],
                        "Components": " ".join(words[3:])})
    return out


def mirrors_from_stanzas(stanzas: Sequence[dict[str, str]]) -> Mirrors | None:
    """The URI serving a plain Debian suite and the one serving ``*-security``."""
    main: str | None = None
    security: str | None = None
    for st in stanzas:
        if "deb" not in st.get("Types", "").split() or st.get("Enabled", "yes") == "no":
            continue
        uris = st.get("URIs", "").split()
        suites = st.get("Suites", "").split()
        if not uris:
            continue
        for suite in suites:
            if suite.endswith("-security"):
                security = security or uris[0]
            elif suite.split("-")[0] in ("bookworm", "trixie", "sid", "forky", "stable",
                                         "testing", "unstable"):
                main = main or uris[0]
    if main is None:
        return None
    return Mirrors(main=main.rstrip("/"), security=security.rstrip("/") if security else None)


def read_system_sources(locations: Sequence[Path] = SYSTEM_SOURCES) -> Mirrors:
    """The mirrors of the system's own apt configuration (read only)."""
    stanzas: list[dict[str, str]] = []
    for loc in locations:
        files = sorted(loc.glob("*.sources")) + sorted(loc.glob("*.list")) if loc.is_dir() \
            else [loc]
        for f in files:
            if not f.is_file():
                continue
            text = f.read_text(errors="replace")
            if f.suffix == ".sources":
                stanzas += parse_deb822_sources(text)
            else:
                stanzas += parse_one_line_sources(text)
    mirrors = mirrors_from_stanzas(stanzas)
    if mirrors is None:
        where = ", ".join(str(p) for p in locations)
        raise UserError(
            f"no Debian archive found in the system's apt sources ({where}); ktstr reads the "
            "mirror from there. Configure apt for Debian, or pass kernels as paths instead "
            "(ktstr kernel fetch ./path/to/bzImage or a built kernel tree)"
        )
    return mirrors


def render_sources(mirrors: Mirrors, keyring: Path) -> str:
    """The private deb822 sources list."""
    blocks = [_stanza(mirrors.main, MAIN_SUITES, keyring)]
    security = mirrors.security or mirrors.main.removesuffix("/debian") + "/debian-security"
    blocks.append(_stanza(security, SECURITY_SUITES, keyring))
    return "\n".join(blocks)


def _stanza(uri: str, suites: Sequence[str], keyring: Path) -> str:
    return (
        "Types: deb\n"
        f"URIs: {uri}\n"
        f"Suites: {' '.join(suites)}\n"
        "Components: main\n"
        f"Architectures: {ARCH}\n"
        f"Signed-By: {keyring}\n"
    )


class AptLayout(Frozen):
    """Where the private apt configuration lives."""

    root: Path

    @property
    def lists(self) -> Path:
        return self.root / "lists"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def sources_file(self) -> Path:
        return self.etc / "sources.list.d" / "ktstr.sources"

    @property
    def lock_file(self) -> Path:
        return self.root / "ktstr-apt.lock"

    @property
    def stamp(self) -> Path:
        """Touched after a successful ``update``; its mtime is the lists' age."""
        return self.root / "updated.stamp"

    def options(self) -> dict[str, str]:
        """``-o`` options that confine apt to this directory."""
        r = self.root
        return {
            "Dir::State": str(r / "state"),
            "Dir::State::Lists": str(self.lists),
            "Dir::State::status": str(r / "state" / "status"),
            "Dir::Cache": str(r / "cache"),
            "Dir::Cache::Archives": str(r / "cache" / "archives"),
            "Dir::Etc::SourceList": str(self.etc / "sources.list"),
            "Dir::Etc::SourceParts": str(self.etc / "sources.list.d"),
            "Dir::Etc::Preferences": str(self.etc / "preferences"),
            "Dir::Etc::PreferencesParts": str(self.etc / "preferences.d"),
            "Dir::Etc::Parts": str(self.etc / "apt.conf.d"),
            "Dir::Etc::Trusted": str(self.etc / "trusted.gpg"),
            "Dir::Etc::TrustedParts": str(self.etc / "trusted.gpg.d"),
            "APT::Architecture": ARCH,
            "APT::Architectures": ARCH,
            "APT::Sandbox::User": "root",
            "Acquire::Languages": "none",
            "Acquire::Retries": "2",
            "Binary::apt::APT::Keep-Downloaded-Packages": "false",
        }

    def materialize(self, mirrors: Mirrors, keyring: Path = SYSTEM_KEYRING) -> None:
        """Create the directories and files (idempotent; rewrites the sources list)."""
        for d in (self.lists / "partial", self.root / "state",
                  self.root / "cache" / "archives" / "partial",
                  self.etc / "sources.list.d", self.etc / "preferences.d",
                  self.etc / "apt.conf.d", self.etc / "trusted.gpg.d"):
            d.mkdir(parents=True, exist_ok=True)
        for empty in (self.root / "state" / "status", self.etc / "sources.list",
                      self.etc / "preferences"):
            empty.touch()
        text = render_sources(mirrors, keyring)
        if not self.sources_file.exists() or self.sources_file.read_text() != text:
            self.sources_file.write_text(text)


def apt_argv(layout: AptLayout, tool: str, *args: str) -> list[str]:
    """``tool -o K=V ... args`` for ``apt-get`` / ``apt-cache`` under ``layout``."""
    argv = [tool, "-q"]
    for key, value in layout.options().items():
        argv += ["-o", f"{key}={value}"]
    return argv + list(args)
