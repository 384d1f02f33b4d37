"""The guest's initramfs: a cached base image plus a small per-run segment.

``build_base(spec)`` lays out busybox (with a symlink per applet), the rendered ``/init``,
ELF binaries with their library closure, include files and decompressed kernel modules,
and writes one cpio archive under ``paths.images_dir()``, named by a hash of its content.
A warm call only stats the input files it recorded last time (no reading, no ELF
parsing): when all are unchanged and the image exists, it returns at once.

``run_segment(files)`` is an uncompressed cpio of per-run files; ``compose(base, segment,
out)`` writes the file QEMU's ``-initrd`` loads: the base, then the segment. The kernel
unpacks concatenated archives in order, so segment files are added (or replace base
files) after the base is unpacked.

Applets are symlinked at build time (``busybox --list-full``) rather than installed by
``busybox --install -s`` at boot: the image is cached, so the links cost nothing per
run, every command works from the first line of ``/init``, and a later
``--install -s`` is harmless (it skips existing names).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import IO

from pydantic import field_validator

from ktstr import paths
from ktstr.declare.base import Frozen
from ktstr.errors import InfraError, UserError
from ktstr.image import cache, elf, modules
from ktstr.image.cpio import CpioWriter, archive_name
from ktstr.image.layout import DIR_MODES, Layout
from ktstr.image.modules import ModuleSet

log = logging.getLogger(__name__)

FORMAT = "ktstr-initramfs-1"
MODULE_LOAD_LIST = "ktstr-load-order"


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def suffix(self) -> str:
        return {"none": ".cpio", "gzip": ".cpio.gz", "zstd": ".cpio.zst"}[self.value]


def _guest_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"guest path {path!r} must be absolute")
    return "/" + archive_name(path)


def _guest_keys(value: Mapping[str, Path]) -> dict[str, Path]:
    return {_guest_path(k): Path(v).absolute() for k, v in sorted(value.items())}


class ImageSpec(Frozen):
    """Everything that goes into a base image. Host paths are read at build time."""

    #: None for an overlay: files added over a base image, without init or busybox
    init: str | None
    busybox: Path | None = Path("/bin/busybox")
    applets: bool = True
    binaries: dict[str, Path] = {}
    files: dict[str, Path] = {}
    modules: ModuleSet | None = None
    directories: tuple[str, ...] = ()
    compression: Compression = Compression.NONE
    library_search: elf.LibrarySearch = elf.LibrarySearch()
    #: libraries an image below this one already holds (guest path -> host file): the
    #: closure leaves out each one it would take from that same host file
    provided: dict[str, Path] = {}

    _v_binaries = field_validator("binaries", "files", "provided")(_guest_keys)

    @field_validator("directories")
    @classmethod
    def _dirs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({_guest_path(d) for d in value}))


def _plan(spec: ImageSpec) -> Layout:
    """Resolve a spec into a layout: reads ELF headers, module files, busybox's applets."""
    if spec.busybox is not None and not elf.is_static(spec.busybox):
        raise UserError(
            f"{spec.busybox} is not a static ELF binary; install busybox-static "
            "(its /bin/busybox) or point ImageSpec.busybox at a static busybox"
        )
    layout = Layout()
    for directory in spec.directories:
        layout.add_dir(directory)
    if spec.init is not None:
        layout.add_blob("/init", spec.init.encode(), 0o755)
    if spec.busybox is not None:
        layout.add_file("/bin/busybox", spec.busybox, 0o755)
    for guest, host in spec.files.items():
        layout.add_file(guest, host)
    for guest, host in spec.binaries.items():
        layout.add_file(guest, host)
    for guest, host in elf.closure(spec.binaries, spec.library_search).items():
        if spec.provided.get(_guest_path(guest)) == Path(host).absolute():
            continue
        layout.add_file(guest, host)
    if spec.library_search.ld_cache is not None:
        layout.watch(spec.library_search.ld_cache)
    if spec.modules is not None:
        _plan_modules(spec.modules, layout)
    if spec.applets and spec.busybox is not None:
        for applet in _applets(spec.busybox):
            if not layout.taken(applet):
                layout.add_symlink(applet, "/bin/busybox")
    return layout


def _plan_modules(wanted: ModuleSet, layout: Layout) -> None:
    order = modules.closure(wanted)
    for module, data in order:
        layout.add_blob(module.guest_path(wanted.kernel_release), data, 0o644)
        layout.watch(module.source)
    layout.watch(wanted.tree / "modules.builtin")
    listing = modules.load_list([m for m, _ in order], wanted.kernel_release)
    layout.add_blob(
        f"/lib/modules/{wanted.kernel_release}/{MODULE_LOAD_LIST}", listing.encode(), 0o644
    )


def _applets(busybox: Path) -> list[str]:
    try:
        done = subprocess.run(
            [str(busybox), "--list-full"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise InfraError(f"cannot list the applets of {busybox}: {exc}") from exc
    return sorted("/" + line.strip() for line in done.stdout.splitlines() if line.strip())


# -- the cached base image ------------------------------------------------------------


def spec_key(spec: ImageSpec) -> str:
    text = FORMAT + "\0" + spec.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()


def build_base(spec: ImageSpec) -> Path:
    """The base image for ``spec``: from the cache when its inputs are unchanged."""
    root = paths.images_dir()
    record_path = root / "specs" / f"{spec_key(spec)}.json"
    record = cache.read_json(record_path)
    if record is not None:
        image = root / str(record.get("image"))
        inputs = record.get("inputs")
        if isinstance(inputs, dict) and image.is_file() and cache.identities_match(inputs):
            log.debug("initramfs base %s is current", image.name, extra={"action": "image.warm"})
            return image
    started = time.perf_counter()
    layout = _plan(spec)
    hashes = cache.HashStore(root)
    content_key, inputs = layout.content_key(hashes, FORMAT, spec.compression.value)
    hashes.save()
    image = root / f"base-{content_key[:32]}{spec.compression.suffix}"
    with cache.locked(root / "locks" / f"{image.name}.lock"):
        if not image.is_file():
            with cache.atomic_output(image) as handle:
                _write_image(layout, spec.compression, handle)
            log.info(
                "built initramfs base %s (%d bytes) in %.0f ms",
                image.name,
                image.stat().st_size,
                (time.perf_counter() - started) * 1000,
                extra={"action": "image.build"},
            )
    cache.write_atomic(
        record_path, json.dumps({"image": image.name, "inputs": inputs}, sort_keys=True).encode()
    )
    return image


def _write_image(layout: Layout, compression: Compression, out: IO[bytes]) -> None:
    if compression is Compression.NONE:
        layout.write(CpioWriter(out))
    elif compression is Compression.GZIP:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=1) as gz:
            layout.write(CpioWriter(gz))
    else:
        _write_zstd(layout, out)
    size = out.tell()
    out.write(b"\0" * ((4 - size % 4) % 4))  # the next archive must start 4-aligned


def _write_zstd(layout: Layout, out: IO[bytes]) -> None:
    try:
        proc = subprocess.Popen(["zstd", "-q", "-3", "-c"], stdin=subprocess.PIPE, stdout=out)
    except OSError as exc:
        raise InfraError(f"cannot run zstd (install the zstd package): {exc}") from exc
    stdin = proc.stdin
    if stdin is None:  # pragma: no cover - Popen always gives a pipe for PIPE
        raise InfraError("zstd has no input pipe")
    try:
        with stdin:
            layout.write(CpioWriter(stdin))
    finally:
        code = proc.wait()
    if code != 0:
        raise InfraError(f"zstd failed with exit code {code} while compressing the initramfs")
    out.seek(0, os.SEEK_END)


# -- per run --------------------------------------------------------------------------


def run_segment(files: Mapping[str, bytes | Path]) -> bytes:
    """An uncompressed cpio of per-run files (bytes: mode 0644; host paths keep their x bit).

    Parent directories the base also has keep the base's modes (``/tmp`` stays 1777).
    """
    buffer = io.BytesIO()
    with CpioWriter(buffer, dir_modes=DIR_MODES) as writer:
        for guest, source in sorted(files.items()):
            if isinstance(source, bytes):
                writer.add_file(guest, source)
            else:
                writer.add_file_from(guest, source)
    return buffer.getvalue()


def compose(base: Path, segment: bytes, out: Path, overlays: tuple[Path, ...] = ()) -> Path:
    """Write ``out`` = base, overlays, then segment, each 4-byte aligned; returns ``out``."""
    try:
        with open(out, "wb") as dst:
            for part in (base, *overlays):
                with open(part, "rb") as src:
                    dst.seek(0, os.SEEK_END)
                    size = os.fstat(src.fileno()).st_size
                    _copy(src, dst, size)
                    dst.seek(0, os.SEEK_END)
                    dst.write(b"\0" * ((4 - dst.tell() % 4) % 4))
            dst.write(segment)
    except FileNotFoundError as exc:
        raise UserError(f"initramfs part {exc.filename} does not exist; build it with "
                        "build_base") from exc
    except OSError as exc:
        raise InfraError(f"cannot write the initrd {out}: {exc}") from exc
    return out


def _copy(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    """Append ``size`` bytes of ``src`` to ``dst`` (at its end): in-kernel copy
    (copy_file_range), falling back to a plain copy."""
    start = dst.seek(0, os.SEEK_END)  # also flushes what dst buffered
    src.seek(0)
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size - done)
            if n == 0:
                break
            done += n
    except OSError:
        done = 0
        dst.seek(start)
        dst.truncate()
    if done < size:
        src.seek(done)
        dst.seek(start + done)
        shutil.copyfileobj(src, dst, 1 << 20)
    dst.seek(0, os.SEEK_END)
