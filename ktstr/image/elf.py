"""The shared-library closure of ELF binaries, found the way the dynamic loader finds it.

For each binary: its ``PT_INTERP`` (the loader itself), then breadth-first every
``DT_NEEDED`` name, searched in ld.so's order — ``DT_RPATH`` of the object and of its
loaders (only when the object has no ``DT_RUNPATH``), ``DT_RUNPATH`` of the object, the
ld.so cache, then the default directories. A candidate counts only if it is an ELF of
the same class and machine as the object that needs it (ld.so skips the others too).

The result maps *guest* paths to the *host paths where the libraries were found* (often
symlinks such as ``libz.so.1``, kept unresolved so a cache can notice when a package
upgrade repoints them): the image stores the real bytes behind each one at the path the
guest's loader will look for, and guest paths that share content become hard links.
``$ORIGIN`` is expanded twice — against the binary's host location to find the file,
against its guest location to place it — so a binary moved into ``/bin`` still finds
its ``$ORIGIN/../lib`` libraries. ``LD_LIBRARY_PATH`` is ignored on purpose: the
host's environment must not shape the image. Library search assumes x86-64 Debian's
multiarch layout (the default directories below); glibc-hwcaps variants are not used,
the baseline library always works.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.image.cache import identity, read_json, write_atomic
from ktstr.paths import cache_root

if TYPE_CHECKING:
    from elftools.elf.structs import ELFStructs

log = logging.getLogger(__name__)

ELF_MAGIC = b"\x7fELF"
DEFAULT_DIRS: tuple[str, ...] = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib",
    "/lib",
)
LD_CACHE = Path("/etc/ld.so.cache")
_CACHE_MAGIC_OLD = b"ld.so-1.7.0"
_CACHE_MAGIC_NEW = b"glibc-ld.so.cache1.1"
_MULTIARCH_LIB = "lib/x86_64-linux-gnu"
#: dynamic tags whose value is an offset into the dynamic string table
_STRING_TAGS = ("DT_NEEDED", "DT_SONAME", "DT_RPATH", "DT_RUNPATH")


class ElfFacts(Frozen):
    """What the loader needs to know about one ELF file."""

    elfclass: int
    machine: str
    interp: str | None = None
    soname: str | None = None
    needed: tuple[str, ...] = ()
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()

    @property
    def is_static(self) -> bool:
        return self.interp is None and not self.needed


class LibrarySearch(Frozen):
    """Where libraries are looked for; tests point it at a fake tree."""

    ld_cache: Path | None = LD_CACHE
    default_dirs: tuple[str, ...] = DEFAULT_DIRS


def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == ELF_MAGIC
    except OSError:
        return False


@lru_cache(maxsize=1024)
def _facts_cached(real: str, size: int, mtime_ns: int) -> ElfFacts | None:
    from elftools.common.exceptions import ELFError  # pyelftools: only when a file is read

    try:
        with open(real, "rb") as handle:
            if handle.read(4) != ELF_MAGIC:
                return None
            handle.seek(0)
            return _read_facts(handle)
    except (ELFError, ValueError, KeyError) as exc:
        raise UserError(f"{real} looks like an ELF file but cannot be parsed: {exc}") from exc
    except OSError as exc:
        raise InfraError(f"cannot read {real}: {exc}") from exc


def _read_facts(handle: BinaryIO) -> ElfFacts:
    """Program headers and dynamic tags only, decoded with pyelftools' structs.

    (pyelftools' ``ELFFile`` builds its structs per file and its segment objects read the
    section table, ~10 ms per library; the loader never reads sections, nor do we.)
    """
    ident = handle.read(6)
    if len(ident) < 6 or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise ValueError("bad ELF class or data encoding in e_ident")
    little, elfclass = ident[5] == 1, 32 * ident[4]
    handle.seek(0)
    ehdr = _structs(little, elfclass).Elf_Ehdr.parse_stream(handle)
    osabi = str(ehdr["e_ident"]["EI_OSABI"])
    structs = _structs(little, elfclass, str(ehdr["e_type"]), str(ehdr["e_machine"]), osabi)
    headers = []
    for index in range(ehdr["e_phnum"]):
        handle.seek(ehdr["e_phoff"] + index * ehdr["e_phentsize"])
        headers.append(structs.Elf_Phdr.parse_stream(handle))
    interp: str | None = None
    tags: list[tuple[str, int]] = []
    for header in headers:
        if header["p_type"] == "PT_INTERP":
            handle.seek(header["p_offset"])
            interp = handle.read(header["p_filesz"]).split(b"\0", 1)[0].decode()
        elif header["p_type"] == "PT_DYNAMIC":
            step = structs.Elf_Dyn.sizeof()
            for index in range(header["p_filesz"] // step):
                handle.seek(header["p_offset"] + index * step)
                entry = structs.Elf_Dyn.parse_stream(handle)
                if entry["d_tag"] == "DT_NULL":
                    break
                tags.append((str(entry["d_tag"]), int(entry["d_val"])))
    strtab = _file_offset(headers, dict(tags).get("DT_STRTAB"))
    strings: dict[str, list[str]] = {key: [] for key in _STRING_TAGS}
    for tag, value in tags:
        if tag in strings:
            if strtab is None:
                raise ValueError(f"{tag} present but DT_STRTAB cannot be located")
            strings[tag].append(_c_string(handle, strtab + value))
    split = [p for text in strings["DT_RPATH"] for p in text.split(":") if p]
    split_run = [p for text in strings["DT_RUNPATH"] for p in text.split(":") if p]
    return ElfFacts(
        elfclass=elfclass,
        machine=str(ehdr["e_machine"]),
        interp=interp,
        soname=next(iter(strings["DT_SONAME"]), None),
        needed=tuple(strings["DT_NEEDED"]),
        rpath=tuple(split),
        runpath=tuple(split_run),
    )


@lru_cache(maxsize=32)
def _structs(
    little: bool,
    elfclass: int,
    e_type: str | None = None,
    e_machine: str | None = None,
    osabi: str | None = None,
) -> ELFStructs:
    from elftools.elf.structs import ELFStructs

    structs = ELFStructs(little_endian=little, elfclass=elfclass)
    structs.create_basic_structs()
    if e_type is not None:
        structs.create_advanced_structs(e_type, e_machine, osabi)
    return structs


def _file_offset(headers: list[Any], address: int | None) -> int | None:
    """Map a virtual address to a file offset through the PT_LOAD headers."""
    if address is None:
        return None
    for header in headers:
        start = header["p_vaddr"]
        if header["p_type"] == "PT_LOAD" and start <= address < start + header["p_filesz"]:
            return int(address - start + header["p_offset"])
    return None


def _c_string(handle: BinaryIO, offset: int) -> str:
    handle.seek(offset)
    data = b""
    while b"\0" not in data:
        chunk = handle.read(256)
        if not chunk:
            raise ValueError(f"unterminated string at offset {offset}")
        data += chunk
    return data.split(b"\0", 1)[0].decode(errors="surrogateescape")


def elf_facts(path: Path) -> ElfFacts | None:
    """The loader-relevant facts of ``path``, or None when it is not an ELF file.

    Remembered in ``<cache>/elf-facts.json`` while the file's identity (device, inode,
    size, mtime) is unchanged: every run reads the scheduler's and the C runtime's
    headers, and importing pyelftools and parsing them cost each process ~50 ms."""
    real = os.path.realpath(path)
    ident = identity(real)
    if ident is None:
        raise UserError(f"{path} does not exist or cannot be read")
    with _FACTS_LOCK:
        hit = _facts_memo().get(real)
    if isinstance(hit, dict) and hit.get("identity") == list(ident):
        try:
            raw = hit.get("facts")
            return None if raw is None else ElfFacts.model_validate(raw)
        except ValueError:
            pass
    facts = _facts_cached(real, ident[2], ident[3])
    with _FACTS_LOCK:
        memo = _facts_memo()
        memo[real] = {"identity": list(ident),
                      "facts": None if facts is None else facts.model_dump(mode="json")}
        _write_facts_memo(memo)
    return facts


def _facts_memo_path() -> Path:
    return cache_root() / "elf-facts.json"


#: this process's view of the memo, by memo path (tests point the cache elsewhere)
_FACTS_MEMO: dict[Path, dict[str, Any]] = {}
#: held while the memo is read, changed or written: parallel image builds in one process
#: (threads) share it, and pruning walks it
_FACTS_LOCK = threading.Lock()


def _facts_memo() -> dict[str, Any]:
    path = _facts_memo_path()
    if path not in _FACTS_MEMO:
        try:
            _FACTS_MEMO[path] = dict(read_json(path) or {})
        except OSError:
            _FACTS_MEMO[path] = {}
    return _FACTS_MEMO[path]


#: entries kept in the memo at most (a file that is gone is dropped first)
FACTS_MEMO_MAX = 4096


def _write_facts_memo(memo: dict[str, Any]) -> None:
    """Atomically; a failure (or a lost race with another process) costs a parse.
    Entries of files that no longer exist are dropped, and the newest
    ``FACTS_MEMO_MAX`` kept, so include files from temporary folders do not pile up."""
    for name in [n for n in memo if not os.path.exists(n)]:
        del memo[name]
    while len(memo) > FACTS_MEMO_MAX:
        del memo[next(iter(memo))]  # the oldest insertion
    try:
        write_atomic(_facts_memo_path(), json.dumps(memo).encode(), durable=False)
    except OSError as exc:
        log.debug("ELF facts memo not written: %s", exc)


# -- the ld.so cache --------------------------------------------------------------------


def parse_ld_cache(data: bytes) -> dict[str, list[str]]:
    """soname → paths from the bytes of ``/etc/ld.so.cache`` (glibc's "1.1" format).

    Entries for hardware-capability subdirectories are skipped. Raises ValueError when
    the bytes are not in a format this parser knows.
    """
    offset = 0
    if data.startswith(_CACHE_MAGIC_OLD):
        (nlibs,) = struct.unpack_from("<I", data, len(_CACHE_MAGIC_OLD))
        offset = len(_CACHE_MAGIC_OLD) + 4 + nlibs * 12
        offset = (offset + 7) & ~7
    if data[offset : offset + len(_CACHE_MAGIC_NEW)] != _CACHE_MAGIC_NEW:
        raise ValueError("not a glibc-ld.so.cache1.1 file")
    nlibs, _len_strings = struct.unpack_from("<II", data, offset + 20)
    entries = offset + 48
    result: dict[str, list[str]] = {}

    def string(at: int) -> str:
        start = offset + at
        return data[start : data.index(b"\0", start)].decode()

    for index in range(nlibs):
        _flags, key, value, _osv, hwcap = struct.unpack_from("<iIIIQ", data, entries + 24 * index)
        if hwcap:
            continue
        result.setdefault(string(key), []).append(string(value))
    return result


def parse_ldconfig_p(text: str) -> dict[str, list[str]]:
    """soname → paths from the output of ``ldconfig -p`` (the fallback)."""
    result: dict[str, list[str]] = {}
    for line in text.splitlines():
        if " => " not in line:
            continue
        left, path = line.rsplit(" => ", 1)
        soname = left.strip().split(" ", 1)[0]
        result.setdefault(soname, []).append(path.strip())
    return result


@lru_cache(maxsize=8)
def _ld_cache_cached(path: str, size: int, mtime_ns: int) -> dict[str, list[str]]:
    data = Path(path).read_bytes()
    try:
        return parse_ld_cache(data)
    except (ValueError, struct.error) as exc:
        log.debug("%s: %s; asking ldconfig -p", path, exc)
    try:
        done = subprocess.run(
            ["ldconfig", "-p", "-C", path], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InfraError(f"cannot read the ld.so cache {path}: {exc}") from exc
    return parse_ldconfig_p(done.stdout)


def ld_cache(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    return _ld_cache_cached(str(path), st.st_size, st.st_mtime_ns)


# -- resolution -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dir:
    host: str
    guest: str
    origin: str  # where the directory came from, for error messages


@dataclass(frozen=True)
class _Loaded:
    host: str  # path as found on the host (not resolved)
    guest: str
    facts: ElfFacts
    rpath_chain: tuple[_Dir, ...] = field(default=())


def _expand(entry: str, host_origin: str, guest_origin: str, label: str) -> _Dir:
    def subst(origin: str) -> str:
        out = entry
        for token, value in (
            ("${ORIGIN}", origin),
            ("$ORIGIN", origin),
            ("${LIB}", _MULTIARCH_LIB),
            ("$LIB", _MULTIARCH_LIB),
            ("${PLATFORM}", "x86_64"),
            ("$PLATFORM", "x86_64"),
        ):
            out = out.replace(token, value)
        return os.path.normpath(out)

    return _Dir(host=subst(host_origin), guest=subst(guest_origin), origin=label)


def _object_dirs(loaded: _Loaded, kind: str) -> tuple[_Dir, ...]:
    entries = loaded.facts.rpath if kind == "RPATH" else loaded.facts.runpath
    host_origin = os.path.dirname(loaded.host)
    guest_origin = str(PurePosixPath(loaded.guest).parent)
    return tuple(_expand(e, host_origin, guest_origin, f"{kind} of {loaded.host}") for e in entries)


def _usable(candidate: str, wanted: ElfFacts) -> ElfFacts | None:
    if not os.path.isfile(candidate):
        return None
    facts = elf_facts(Path(candidate))
    if facts is None or facts.elfclass != wanted.elfclass or facts.machine != wanted.machine:
        return None
    return facts


def _search(
    name: str, obj: _Loaded, search: LibrarySearch, cache: Mapping[str, list[str]]
) -> tuple[_Loaded | None, list[str]]:
    """Find ``name`` for ``obj``; returns the hit (or None) and the places looked in."""
    looked: list[str] = []
    if "/" in name:
        facts = _usable(name, obj.facts)
        return (_Loaded(name, name, facts) if facts else None), [name]
    runpath = _object_dirs(obj, "RUNPATH")
    rpath = () if runpath else obj.rpath_chain + _object_dirs(obj, "RPATH")
    for directory in (*rpath, *runpath):
        candidate = os.path.join(directory.host, name)
        looked.append(f"{directory.host} ({directory.origin})")
        facts = _usable(candidate, obj.facts)
        if facts:
            guest = str(PurePosixPath(directory.guest) / name)
            return _Loaded(candidate, guest, facts), looked
    if search.ld_cache is not None:
        looked.append(f"the ld.so cache {search.ld_cache}")
        for candidate in cache.get(name, ()):
            facts = _usable(candidate, obj.facts)
            if facts:
                return _Loaded(candidate, _guest_for_cached(candidate, search), facts), looked
    for directory_name in search.default_dirs:
        looked.append(directory_name)
        candidate = os.path.join(directory_name, name)
        facts = _usable(candidate, obj.facts)
        if facts:
            return _Loaded(candidate, candidate, facts), looked
    return None, looked


def _guest_for_cached(candidate: str, search: LibrarySearch) -> str:
    """The guest has no ld.so cache: a library the cache found outside the default
    directories goes into the first default directory instead."""
    parent = os.path.dirname(candidate)
    if parent in search.default_dirs or not search.default_dirs:
        return candidate
    return os.path.join(search.default_dirs[0], os.path.basename(candidate))


def closure(binaries: Mapping[str, Path], search: LibrarySearch | None = None) -> dict[str, Path]:
    """Libraries (and loaders) the binaries need: guest path → host path as found.

    ``binaries`` maps each binary's guest path to its host path. The binaries themselves
    are not in the result. A static binary adds nothing; a file that is not ELF is a
    ``UserError`` (include it as a plain file instead); a library that cannot be found is
    a ``UserError`` naming the binary, the library, who needs it and where it looked.
    """
    search = search or LibrarySearch()
    cache = ld_cache(search.ld_cache)
    result: dict[str, Path] = {}
    for guest, host in sorted(binaries.items()):
        facts = elf_facts(host)
        if facts is None:
            raise UserError(
                f"{host} (for {guest}) is not an ELF binary; add it as a plain file instead"
            )
        _one_binary(guest=guest, host=host, facts=facts, search=search, cache=cache, result=result)
    return result


def _one_binary(
    *,
    guest: str,
    host: Path,
    facts: ElfFacts,
    search: LibrarySearch,
    cache: Mapping[str, list[str]],
    result: dict[str, Path],
) -> None:
    if facts.is_static:
        log.debug("%s is static: no libraries", host)
        return
    root = _Loaded(os.path.realpath(host), guest, facts)
    queue: deque[_Loaded] = deque([root])
    if facts.interp:
        interp = _usable(facts.interp, facts)
        if interp is None:
            raise UserError(
                f"{host} needs the ELF interpreter {facts.interp}, which is missing or not "
                f"a {facts.elfclass}-bit {facts.machine} ELF; install the matching libc"
            )
        result[facts.interp] = Path(facts.interp)
        queue.append(_Loaded(facts.interp, facts.interp, interp))
    # ld.so reuses an object already loaded under the same name or soname
    loaded: set[str] = set()
    if facts.interp:
        loaded.add(os.path.basename(facts.interp))
        loaded.add(queue[-1].facts.soname or "")
    while queue:
        obj = queue.popleft()
        chain = obj.rpath_chain + (() if obj.facts.runpath else _object_dirs(obj, "RPATH"))
        for name in obj.facts.needed:
            if name in loaded:
                continue
            hit, looked = _search(name, obj, search, cache)
            if hit is None:
                raise UserError(
                    f"{host} needs {name} (through {obj.host}), which was not found; "
                    f"looked in: {', '.join(looked)}. Install the package that provides "
                    f"{name} on the host, or include a static build of {host.name}"
                )
            loaded.update(n for n in (name, hit.facts.soname) if n)
            result[hit.guest] = Path(hit.host)
            queue.append(_Loaded(hit.host, hit.guest, hit.facts, chain))


#: the C runtime's libraries that every dynamically linked program loads (with the
#: interpreter that loads them)
C_RUNTIME_LIBRARIES = ("libc.so.6",)


def c_runtime(reference: Path = Path("/bin/sh"),
              search: LibrarySearch | None = None) -> dict[str, Path]:
    """The host's C runtime as a program's closure places it: the ELF interpreter and
    ``C_RUNTIME_LIBRARIES``, guest path → host path, found through ``reference`` (any
    dynamically linked host program; the shell on every Debian host). Empty when the
    reference is missing or static: nothing is then shared, and every closure carries its
    own runtime as before."""
    facts = elf_facts(reference) if reference.is_file() else None
    if facts is None or facts.is_static:
        return {}
    try:
        libraries = closure({"/ktstr-runtime-reference": reference}, search)
    except UserError as exc:
        log.debug("no shared C runtime: %s", exc)
        return {}
    return {guest: host for guest, host in libraries.items()
            if guest == facts.interp or PurePosixPath(guest).name in C_RUNTIME_LIBRARIES}


def is_static(path: Path) -> bool:
    """True for an ELF file that needs neither an interpreter nor shared libraries."""
    facts = elf_facts(path)
    return facts is not None and facts.is_static
