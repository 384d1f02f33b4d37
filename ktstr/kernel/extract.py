"""Turn downloaded Debian kernel packages into a cache entry's files.

``dpkg_extract_argv`` is pure; ``assemble`` moves the files of an unpacked package tree
into the entry layout (``vmlinuz``, ``config``, ``System.map``, ``modules/``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ktstr.errors import InfraError

IMAGE = "vmlinuz"
CONFIG = "config"
SYSTEM_MAP = "System.map"
MODULES = "modules"


def dpkg_extract_argv(deb: Path, dest: Path) -> list[str]:
    return ["dpkg-deb", "-x", str(deb), str(dest)]


def extract_debs(debs: Sequence[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        argv = dpkg_extract_argv(deb, dest)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise InfraError(f"step 'dpkg-deb -x {deb.name}' could not start: {exc}") from exc
        if proc.returncode != 0:
            raise InfraError(f"step 'dpkg-deb -x {deb.name}' failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[-500:]}")


def _first(candidates: Sequence[Path]) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def assemble(unpacked: Path, release: str, entry: Path) -> dict[str, str]:
    """Move the kernel files of ``unpacked`` into ``entry``; return the metadata names.

    Handles both layouts: ``usr/lib/modules/REL/{vmlinuz,config,System.map}`` (7.x) and
    ``boot/{vmlinuz,config,System.map}-REL`` + ``lib/modules/REL`` (6.x).
    """
    moddirs = [unpacked / "usr/lib/modules" / release, unpacked / "lib/modules" / release]
    moddir = next((d for d in moddirs if d.is_dir()), None)
    boot = unpacked / "boot"

    def pick(name: str) -> Path | None:
        return _first([*(d / name for d in moddirs), boot / f"{name}-{release}"])

    image = pick(IMAGE)
    if image is None:
        raise InfraError(f"the downloaded packages of {release} contain no vmlinuz "
                         f"(looked in {', '.join(str(d) for d in moddirs)} and {boot})")
    names = {"image": IMAGE}
    shutil.move(image, entry / IMAGE)
    for key, name in (("config", CONFIG), ("system_map", SYSTEM_MAP)):
        found = pick(name)
        if found is not None:
            shutil.move(found, entry / name)
            names[key] = name
    if moddir is not None:
        for link in ("build", "source"):
            (moddir / link).unlink(missing_ok=True)
        shutil.move(moddir, entry / MODULES)
        names["modules"] = MODULES
    return names
