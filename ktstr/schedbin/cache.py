"""Built schedulers, one directory per kernel source version::

    schedulers/
      7.2.13/
        metadata.json        a SchedulerBuild
        bin/scx_simple ...   the schedulers, plus bpftool and veristat
        obj/scx_simple.bpf.o the linked BPF object embedded in each scheduler
        build.log
      .locks/  .tmp-*/       locks; builds in progress (ignored)

Installed like kernel entries: built in a staging directory, renamed into place under the
version's lock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, ValidationError

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.kernel.id import sanitize_label, version_key
from ktstr.kernel.locking import discard_dir, file_lock, install_dir, staging_dir

log = logging.getLogger(__name__)

METADATA = "metadata.json"

#: How builds are made; a cached build of an older recipe still works, and is rebuilt by
#: ``ktstr schedulers build``. 1: the first. 2: bpftool without LLVM, libbfd and libcrypto
#: (``SKIP_LLVM``...): ``prog show`` needs none of them, and libLLVM with its libraries
#: made every verifier cell's guest files ~225 MB instead of ~10 MB. 3: the programs
#: without their DWARF (``--strip-debug``): scx_simple 1.2 MB -> 0.7 MB, sent into every
#: restored VM.
BUILD_RECIPE = 3


class SchedulerBuild(Frozen):
    """One cached build of the example schedulers."""

    source_version: str
    series: str
    debian_version: str
    source_package: str
    btf_kernel: str
    clang: str
    schedulers: list[str]
    tools: list[str] = []
    built_at: dt.datetime
    #: ``BUILD_RECIPE`` when built (older metadata has none: the first recipe)
    recipe: int = 1
    entry_dir: Path = Field(exclude=True)

    @property
    def bin_dir(self) -> Path:
        return self.entry_dir / "bin"

    @property
    def obj_dir(self) -> Path:
        return self.entry_dir / "obj"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def bpf_object(self, name: str) -> Path:
        return self.obj_dir / f"{name}.bpf.o"

    def objects(self) -> list[Path]:
        """Every scheduler's BPF object (what veristat takes)."""
        return [self.bpf_object(n) for n in self.schedulers]

    @property
    def veristat(self) -> Path:
        return self.bin_dir / "veristat"

    @property
    def bpftool(self) -> Path:
        return self.bin_dir / "bpftool"

    @property
    def stale(self) -> bool:
        """Made by an older recipe (usable; ``ktstr schedulers build`` remakes it)."""
        return self.recipe < BUILD_RECIPE

    def problems(self) -> list[str]:
        missing = [p for p in (*map(self.binary, self.schedulers), *self.objects(),
                               *(self.bin_dir / t for t in self.tools)) if not p.is_file()]
        return [f"missing: {p}" for p in missing]

    def summary(self) -> dict[str, object]:
        data = self.model_dump(mode="json")
        data.update(entry_dir=str(self.entry_dir), bin_dir=str(self.bin_dir),
                    obj_dir=str(self.obj_dir))
        return data


def load_build(entry: Path) -> SchedulerBuild | None:
    """A verified build, or None (logged) when the entry is missing or corrupt."""
    try:
        raw = json.loads((entry / METADATA).read_text())
        build = SchedulerBuild.model_validate({**raw, "entry_dir": entry})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError) as exc:
        log.warning("corrupt scheduler build %s: %s", entry, str(exc).splitlines()[0])
        return None
    problems = build.problems()
    if problems:
        log.warning("corrupt scheduler build %s: %s", entry, "; ".join(problems[:3]))
        return None
    return build


class SchedulerCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else paths.schedulers_dir()

    def path_for(self, source_version: str) -> Path:
        return self.root / sanitize_label(source_version)

    def builds(self) -> list[SchedulerBuild]:
        """Valid builds, oldest source version first."""
        if not self.root.is_dir():
            return []
        found = [load_build(p) for p in self.root.iterdir()
                 if p.is_dir() and not p.name.startswith(".")]
        return sorted((b for b in found if b is not None),
                      key=lambda b: version_key(b.source_version))

    def get(self, source_version: str) -> SchedulerBuild | None:
        entry = self.path_for(source_version)
        return load_build(entry) if entry.is_dir() else None

    def for_series(self, series: str) -> SchedulerBuild | None:
        """The newest build whose source is of ``series`` (``7.2``)."""
        matching = [b for b in self.builds() if b.series == series]
        return matching[-1] if matching else None

    def ensure(self, source_version: str, build: Callable[[Path], SchedulerBuild], *,
               force: bool = False) -> SchedulerBuild:
        """The build for ``source_version``, made with ``build(staging)`` if needed."""
        if not force and (found := self.get(source_version)) is not None and not found.stale:
            return found
        label = sanitize_label(source_version)
        with file_lock(self.root / ".locks" / f"{label}.lock", what=f"build {label}"):
            if (not force and (found := self.get(source_version)) is not None
                    and not found.stale):
                return found
            with staging_dir(self.root, label) as tmp:
                made = build(tmp)
                (tmp / METADATA).write_text(made.model_dump_json(indent=2) + "\n")
                install_dir(tmp, self.path_for(source_version))
        result = self.get(source_version)
        if result is None:
            raise RuntimeError(f"scheduler build {source_version} is invalid right after install")
        return result

    def remove(self, source_version: str) -> None:
        entry = self.path_for(source_version)
        if entry.exists():
            discard_dir(entry)
