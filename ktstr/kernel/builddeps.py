"""Host tools a kernel build needs, each with the Debian package that provides it.

``missing_deps`` is pure over injected ``which``/``exists`` functions; ``pahole`` is also
checked against the version the tree's ``DEBUG_INFO_BTF`` asks for (``lib/Kconfig.debug``:
``depends on PAHOLE_VERSION >= 122``), since an older pahole silently turns BTF off, and
sched_ext with it.
"""

from __future__ import annotations

import enum
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from ktstr.declare.base import Frozen
from ktstr.errors import UserError


class DepKind(enum.StrEnum):
    TOOL = "tool"
    HEADER = "header"


class BuildDep(Frozen):
    name: str
    kind: DepKind
    package: str
    #: for headers: where the file must be
    path: str | None = None


BUILD_DEPS: tuple[BuildDep, ...] = (
    BuildDep(name="gcc", kind=DepKind.TOOL, package="gcc"),
    BuildDep(name="make", kind=DepKind.TOOL, package="make"),
    BuildDep(name="ld", kind=DepKind.TOOL, package="binutils"),
    BuildDep(name="flex", kind=DepKind.TOOL, package="flex"),
    BuildDep(name="bison", kind=DepKind.TOOL, package="bison"),
    BuildDep(name="bc", kind=DepKind.TOOL, package="bc"),
    BuildDep(name="perl", kind=DepKind.TOOL, package="perl"),
    BuildDep(name="pahole", kind=DepKind.TOOL, package="dwarves"),
    BuildDep(name="nice", kind=DepKind.TOOL, package="coreutils"),
    BuildDep(name="gelf.h", kind=DepKind.HEADER, package="libelf-dev",
             path="/usr/include/gelf.h"),
    BuildDep(name="zlib.h", kind=DepKind.HEADER, package="zlib1g-dev",
             path="/usr/include/zlib.h"),
)


def missing_deps(deps: Sequence[BuildDep] = BUILD_DEPS, *,
                 which: Callable[[str], str | None] = shutil.which,
                 exists: Callable[[str], bool] = lambda p: Path(p).is_file()) -> list[BuildDep]:
    out = []
    for dep in deps:
        if dep.kind is DepKind.TOOL:
            ok = which(dep.name) is not None
        else:
            assert dep.path is not None
            ok = exists(dep.path)
        if not ok:
            out.append(dep)
    return out


def missing_error(missing: Sequence[BuildDep]) -> UserError:
    names = ", ".join(f"{d.name} (Debian package {d.package})" for d in missing)
    packages = " ".join(sorted({d.package for d in missing}))
    return UserError(f"missing kernel build dependencies: {names}. Install them with "
                     f"scripts/setup.sh, or: apt-get install {packages}")


_PAHOLE = re.compile(r"v?(\d+)\.(\d+)")
_BTF_NEEDS = re.compile(r"config DEBUG_INFO_BTF\n(?:[ \t].*\n|\n)*?\s*depends on "
                        r"PAHOLE_VERSION >= (\d+)")


def pahole_version(text: str) -> int | None:
    """``v1.24`` -> 124 (Kconfig's ``PAHOLE_VERSION``); None when unreadable."""
    m = _PAHOLE.search(text)
    return int(m.group(1)) * 100 + int(m.group(2)) if m else None


def required_pahole(kconfig_debug: str) -> int | None:
    """The ``PAHOLE_VERSION`` that ``DEBUG_INFO_BTF`` depends on in ``lib/Kconfig.debug``."""
    m = _BTF_NEEDS.search(kconfig_debug)
    return int(m.group(1)) if m else None


def check_pahole(have: int | None, need: int | None) -> None:
    if need is None:
        return
    if have is None or have < need:
        shown = f"{have // 100}.{have % 100:02d}" if have else "unknown"
        raise UserError(f"pahole {shown} is too old for this kernel's BTF (DEBUG_INFO_BTF "
                        f"needs {need // 100}.{need % 100:02d}; without BTF there is no "
                        "sched_ext): install a newer dwarves package")


def check_build_deps(tree: Path) -> None:
    """``UserError`` naming the Debian package of every missing dependency."""
    missing = missing_deps()
    if missing:
        raise missing_error(missing)
    kdebug = tree / "lib" / "Kconfig.debug"
    need = required_pahole(kdebug.read_text(errors="replace")) if kdebug.is_file() else None
    proc = subprocess.run(["pahole", "--version"], capture_output=True, text=True,
                          check=False)
    check_pahole(pahole_version(proc.stdout), need)
