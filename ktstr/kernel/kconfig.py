"""Kernel config fragments: parse, merge (later wins), render, and check what survived.

The semantics are those of the kernel's ``scripts/kconfig/merge_config.sh``: fragments are
applied in order and a later value for an option replaces an earlier one (the merge keeps
a record of each redefinition); the merged file is handed to ``make allnoconfig`` with
``KCONFIG_ALLCONFIG`` and then ``olddefconfig``; finally every requested option is looked
up in the resulting ``.config``, and one whose value differs is *dropped*: Kconfig silently
removes options whose dependencies are not met and options it does not know (a typo).

Everything here is pure: text in, frozen models out.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Sequence

from ktstr.declare.base import Frozen
from ktstr.errors import UserError

_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^#\s*CONFIG_([A-Za-z0-9_]+) is not set\s*$")
#: the value a fragment uses for "off"; ``# CONFIG_X is not set`` parses to it too
UNSET = "n"


class Option(Frozen):
    """One requested option: ``name`` without ``CONFIG_``, ``value`` as written (``y``,
    ``n``, ``m``, a number or a quoted string), ``origin`` = ``file:line``."""

    name: str
    value: str
    origin: str


class Fragment(Frozen):
    """A parsed config fragment, options in file order (a repeated option: the last)."""

    source: str
    options: tuple[Option, ...] = ()


def parse_fragment(text: str, source: str) -> Fragment:
    """Parse a fragment. Blank lines and ``#`` comments are skipped; anything else that is
    neither ``CONFIG_X=value`` nor ``# CONFIG_X is not set`` is a ``UserError`` naming the
    file and line (a fragment line Kconfig would ignore is a mistake worth hearing about)."""
    found: dict[str, Option] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{source}:{number}"
        m = _SET.match(line) or _UNSET.match(line)
        if m is None:
            if not line or line.startswith("#"):
                continue
            raise UserError(f"{where}: not a config line: {raw!r} (expected CONFIG_NAME=value "
                            "or '# CONFIG_NAME is not set')")
        name = m.group(1)
        value = m.group(2).strip() if m.re is _SET else UNSET
        if value == "":
            raise UserError(f"{where}: CONFIG_{name} has no value")
        found.pop(name, None)
        found[name] = Option(name=name, value=value, origin=where)
    return Fragment(source=source, options=tuple(found.values()))


class Redefinition(Frozen):
    """A later fragment changed an option an earlier one set (merge_config's warning)."""

    name: str
    old: Option
    new: Option


class MergedConfig(Frozen):
    """The fragments merged in order: one value per option, the last one given."""

    options: tuple[Option, ...]
    redefinitions: tuple[Redefinition, ...] = ()

    def value(self, name: str) -> str | None:
        return next((o.value for o in self.options if o.name == name), None)

    def render(self) -> str:
        """The ``KCONFIG_ALLCONFIG`` file: one line per option, in first-seen order."""
        lines = [f"# CONFIG_{o.name} is not set" if o.value == UNSET else
                 f"CONFIG_{o.name}={o.value}" for o in self.options]
        return "\n".join(lines) + "\n"

    @property
    def digest(self) -> str:
        """sha256 of ``render()``: what the build directory and the cache key depend on
        (origins and comments do not change the kernel, so they are not in it)."""
        return hashlib.sha256(self.render().encode()).hexdigest()


def merge_fragments(fragments: Sequence[Fragment]) -> MergedConfig:
    """Merge in order, later wins; the option keeps the position where it first appeared."""
    merged: dict[str, Option] = {}
    redefs: list[Redefinition] = []
    for fragment in fragments:
        for option in fragment.options:
            old = merged.get(option.name)
            if old is not None and old.value != option.value:
                redefs.append(Redefinition(name=option.name, old=old, new=option))
            merged[option.name] = option
    return MergedConfig(options=tuple(merged.values()), redefinitions=tuple(redefs))


def final_values(config_text: str) -> dict[str, str]:
    """Every option of a resolved ``.config``: set ones with their value as written,
    ``# ... is not set`` ones as ``n``."""
    out: dict[str, str] = {}
    for raw in config_text.splitlines():
        line = raw.strip()
        m = _SET.match(line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = _UNSET.match(line)
        if m:
            out[m.group(1)] = UNSET
    return out


class DropReason(enum.StrEnum):
    #: no Kconfig file of the tree defines it: a typo, or renamed/removed
    UNKNOWN = "unknown"
    #: defined, but not in the final config: its dependencies (or its menu) are off
    HIDDEN = "hidden"
    #: nowhere in the final config, and the tree's symbols were not given
    ABSENT = "absent"
    #: in the final config with another value (an unmet dependency, a choice)
    CHANGED = "changed"


class DroppedOption(Frozen):
    name: str
    wanted: str
    got: str | None
    origin: str
    reason: DropReason

    def describe(self) -> str:
        head = f"CONFIG_{self.name}={self.wanted} ({self.origin})"
        if self.reason is DropReason.UNKNOWN:
            return f"{head}: no such option in this kernel (a typo?)"
        if self.reason is DropReason.HIDDEN:
            return f"{head}: not in the final config: a dependency is off"
        if self.reason is DropReason.ABSENT:
            return (f"{head}: not in the final config: unknown to this kernel (a typo?) or "
                    "a dependency is off")
        return (f"CONFIG_{self.name}={self.wanted} ({self.origin}): became "
                f"{self._shown(self.got)}: a dependency is not met")

    @staticmethod
    def _shown(value: str | None) -> str:
        return "not set" if value in (None, UNSET) else str(value)


def _same(wanted: str, got: str | None) -> bool:
    if wanted == UNSET:
        return got in (None, UNSET)
    if got is None:
        return False
    if wanted == got:
        return True
    # numbers: 0x10 and 16 are one value to Kconfig
    try:
        return int(wanted, 0) == int(got, 0)
    except ValueError:
        return False


_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$", re.MULTILINE)


def kconfig_symbols(texts: Iterable[str]) -> frozenset[str]:
    """Every symbol defined (``config X`` / ``menuconfig X``) in the given Kconfig texts."""
    out: set[str] = set()
    for text in texts:
        out.update(_SYMBOL.findall(text))
    return frozenset(out)


def dropped_options(merged: MergedConfig, config_text: str,
                    known: frozenset[str] | None = None) -> list[DroppedOption]:
    """The requested options whose value in the resolved config differs, in request order.
    ``known``: the tree's Kconfig symbols, to tell a typo from a hidden option."""
    final = final_values(config_text)
    out = []
    for option in merged.options:
        got = final.get(option.name)
        if _same(option.value, got):
            continue
        if got is not None:
            reason = DropReason.CHANGED
        elif known is None:
            reason = DropReason.ABSENT
        else:
            reason = DropReason.HIDDEN if option.name in known else DropReason.UNKNOWN
        out.append(DroppedOption(name=option.name, wanted=option.value, got=got,
                                 origin=option.origin, reason=reason))
    return out
