"""Kernel fakes: an in-memory archive serving real ``.deb`` files built with
``dpkg-deb --build``, and a minimal bzImage header. No network.

``FakeArchive`` stands in for ``ktstr.kernel.archive.ArchiveIndex`` wherever a kernel
is resolved or fetched."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ktstr.errors import InfraError
from ktstr.kernel.archive import PackageVersion, ProgressFn

SCHED_EXT_CONFIG = "CONFIG_SCHED_CLASS_EXT=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_BPF_SYSCALL=y\n"
EEVDF_CONFIG = "# CONFIG_SCHED_CLASS_EXT is not set\nCONFIG_DEBUG_INFO_BTF=y\n"


def fake_bzimage(release: str, size: int = 0x4000) -> bytes:
    """Bytes with an x86 setup header whose ``kernel_version`` is ``release ...``."""
    data = bytearray(size)
    data[0x202:0x206] = b"HdrS"
    text_at = 0x1000
    data[0x20E:0x210] = (text_at - 0x200).to_bytes(2, "little")
    text = f"{release} (fake@example) #1 SMP".encode() + b"\0"
    data[text_at:text_at + len(text)] = text
    return bytes(data)


def build_deb(workdir: Path, package: str, version: str, files: Mapping[str, bytes]) -> Path:
    """A real binary package holding ``files`` (path inside the package -> content)."""
    root = workdir / f"{package}_{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: ktstr tests <tests@localhost>\nDescription: fake\n"
    )
    for rel, content in files.items():
        dest = root / rel.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    deb = workdir / f"{package}_{version.replace(':', '%3a')}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    shutil.rmtree(root)
    return deb


def split_kernel_debs(workdir: Path, release: str, version: str,
                      config: str = SCHED_EXT_CONFIG) -> dict[str, Path]:
    """The three packages of the 7.x layout for ``release``."""
    mod = f"usr/lib/modules/{release}"
    return {
        f"linux-binary-{release}": build_deb(workdir, f"linux-binary-{release}", version,
                                             {f"{mod}/vmlinuz": fake_bzimage(release)}),
        f"linux-base-{release}": build_deb(workdir, f"linux-base-{release}", version, {
            f"{mod}/config": config.encode(), f"{mod}/System.map": b"0 T fake\n",
            f"{mod}/modules.builtin": b"kernel/fake.ko\n"}),
        f"linux-modules-{release}": build_deb(workdir, f"linux-modules-{release}", version, {
            f"{mod}/kernel/fs/9p/9p.ko.xz": b"fake module"}),
    }


def image_kernel_debs(workdir: Path, release: str, version: str,
                      config: str = EEVDF_CONFIG) -> dict[str, Path]:
    """The single package of the 6.x layout for ``release``."""
    name = f"linux-image-{release}-unsigned"
    return {name: build_deb(workdir, name, version, {
        f"boot/vmlinuz-{release}": fake_bzimage(release),
        f"boot/config-{release}": config.encode(),
        f"boot/System.map-{release}": b"0 T fake\n",
        f"lib/modules/{release}/kernel/net/9p/9pnet.ko.xz": b"fake module"})}


class FakeArchive:
    """An ``ArchiveIndex`` over given versions and ``.deb`` files; counts downloads."""

    def __init__(self, versions: Sequence[PackageVersion] = (),
                 debs: Mapping[str, Path] | None = None, *, fail_download: bool = False) -> None:
        self.index = list(versions)
        self.debs = dict(debs or {})
        self.fail_download = fail_download
        self.downloads: list[str] = []

    def add(self, version: str, suite: str, debs: Mapping[str, Path]) -> None:
        for name, deb in debs.items():
            self.index.append(PackageVersion(package=name, version=version, suite=suite))
            self.debs[f"{name}={version}"] = deb

    def package_names(self, prefix: str) -> list[str]:
        return sorted({v.package for v in self.index if v.package.startswith(prefix)})

    def versions(self, packages: Sequence[str]) -> list[PackageVersion]:
        return [v for v in self.index if v.package in packages]

    def download(self, wanted: Sequence[PackageVersion], dest: Path,
                 progress: ProgressFn | None = None) -> list[Path]:
        out = []
        for w in wanted:
            self.downloads.append(w.ref)
            if self.fail_download:
                raise InfraError(f"step 'apt-get download {w.package}' failed (fake)")
            src = self.debs[w.ref]
            out.append(Path(shutil.copy2(src, dest / src.name)))
            if progress is not None:
                progress(w.package, src.stat().st_size, src.stat().st_size)
        return out
