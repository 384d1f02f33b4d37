"""Library closures on real system binaries and on small binaries built here with gcc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from ktstr.errors import UserError
from ktstr.image import elf
from ktstr.image.elf import ElfFacts, LibrarySearch, closure, elf_facts

BUSYBOX = Path("/bin/busybox")
INTERP = "/lib64/ld-linux-x86-64.so.2"


def _ldd(binary: str) -> set[str]:
    """Real files ldd reports (the loader's own answer, for comparison)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    files = set()
    for line in out.splitlines():
        words = line.split()
        path = words[2] if "=>" in words else words[0]
        if path.startswith("/"):
            files.add(os.path.realpath(path))
    return files


@pytest.mark.parametrize("binary", ["/bin/ls", "/usr/bin/stress-ng"])
def test_closure_of_system_binaries_matches_ldd(binary: str) -> None:
    found = closure({"/bin/tool": Path(binary)})
    assert {os.path.realpath(p) for p in found.values()} == _ldd(binary)
    assert found[INTERP] == Path(INTERP)
    assert found["/lib/x86_64-linux-gnu/libc.so.6"] == Path("/lib/x86_64-linux-gnu/libc.so.6")


def test_static_busybox_and_the_interpreter_need_nothing() -> None:
    assert elf.is_static(BUSYBOX)
    assert closure({"/bin/busybox": BUSYBOX, "/lib/ld.so": Path(INTERP)}) == {}


def test_a_dynamic_binary_is_not_static() -> None:
    assert not elf.is_static(Path("/bin/ls"))
    assert not elf.is_static(Path(__file__))


def test_a_non_elf_binary_is_rejected() -> None:
    with pytest.raises(UserError, match=r"test_image_elf.py \(for /bin/x\) is not an ELF binary"):
        closure({"/bin/x": Path(__file__)})


def test_a_missing_binary_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope does not exist"):
        closure({"/bin/x": tmp_path / "nope"})


def test_ld_cache_parser_agrees_with_ldconfig() -> None:
    parsed = elf.parse_ld_cache(Path("/etc/ld.so.cache").read_bytes())
    listed = elf.parse_ldconfig_p(
        subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    )
    assert parsed == listed
    assert "/lib/x86_64-linux-gnu/libc.so.6" in parsed["libc.so.6"]


def test_ld_cache_parser_rejects_other_bytes() -> None:
    with pytest.raises(ValueError, match=r"not a glibc-ld\.so\.cache1\.1 file"):
        elf.parse_ld_cache(b"something else entirely")


# -- binaries built here: RUNPATH with $ORIGIN, RPATH, missing libraries ------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tree/lib/libktfoo.so.1 (+ a dev symlink), tree/bin/{runpath,rpath,plain}."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: run scripts/setup.sh")
    root = tmp_path_factory.mktemp("elf")
    (root / "lib").mkdir()
    (root / "bin").mkdir()
    (root / "foo.c").write_text("int ktfoo(void) { return 7; }\n")
    (root / "main.c").write_text("int ktfoo(void);\nint main(void) { return ktfoo(); }\n")
    real = root / "lib" / "libktfoo.so.1.0"

    def gcc(*args: str) -> None:
        subprocess.run(["gcc", *args], cwd=root, check=True, capture_output=True)

    gcc("-shared", "-fPIC", "-Wl,-soname,libktfoo.so.1", "-o", str(real), "foo.c")
    (root / "lib" / "libktfoo.so.1").symlink_to("libktfoo.so.1.0")
    (root / "lib" / "libktfoo.so").symlink_to("libktfoo.so.1")
    common = ("main.c", "-Llib", "-lktfoo")
    gcc(*common, "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib", "-o", "bin/runpath")
    gcc(*common, "-Wl,--disable-new-dtags,-rpath," + str(root / "lib"), "-o", "bin/rpath")
    gcc(*common, "-o", "bin/plain")
    return root


def test_runpath_origin_is_found_on_the_host_and_placed_beside_the_guest_binary(
    built: Path,
) -> None:
    facts = elf.elf_facts(built / "bin/runpath")
    assert facts is not None and facts.runpath == ("$ORIGIN/../lib",)
    found = closure({"/opt/kt/bin/runpath": built / "bin/runpath"})
    assert found["/opt/kt/lib/libktfoo.so.1"] == built / "lib" / "libktfoo.so.1"
    assert found["/opt/kt/lib/libktfoo.so.1"].resolve() == built / "lib" / "libktfoo.so.1.0"
    assert found[INTERP] == Path(INTERP)


def test_rpath_is_searched(built: Path) -> None:
    found = closure({"/bin/rpath": built / "bin/rpath"})
    assert found[str(built / "lib/libktfoo.so.1")] == built / "lib" / "libktfoo.so.1"


def test_default_dirs_are_searched_and_wrong_candidates_skipped(built: Path) -> None:
    decoy = built / "decoy"
    decoy.mkdir(exist_ok=True)
    (decoy / "libktfoo.so.1").write_text("not an ELF\n")
    search = LibrarySearch(
        ld_cache=None, default_dirs=(str(decoy), str(built / "lib"), *elf.DEFAULT_DIRS)
    )
    found = closure({"/bin/plain": built / "bin/plain"}, search)
    assert found[str(built / "lib/libktfoo.so.1")] == built / "lib" / "libktfoo.so.1"
    assert str(decoy / "libktfoo.so.1") not in found


def test_missing_library_names_binary_library_and_places(built: Path) -> None:
    with pytest.raises(UserError) as caught:
        closure({"/bin/plain": built / "bin/plain"})
    message = str(caught.value)
    assert f"{built / 'bin/plain'} needs libktfoo.so.1" in message
    assert "the ld.so cache /etc/ld.so.cache" in message
    assert "/usr/lib/x86_64-linux-gnu" in message
    assert "Install the package that provides libktfoo.so.1" in message


def test_a_moved_runpath_binary_reports_its_runpath_dir(built: Path, tmp_path: Path) -> None:
    # moved away from its lib/, the RUNPATH binary finds nothing and says where it looked
    moved = tmp_path / "x" / "bin"
    moved.mkdir(parents=True)
    shutil.copy2(built / "bin/runpath", moved / "runpath")
    with pytest.raises(UserError, match=r"looked in: .*x/lib \(RUNPATH of "):
        closure({"/bin/runpath": moved / "runpath"})


def test_a_library_the_cache_finds_elsewhere_goes_to_a_default_dir_in_the_guest() -> None:
    search = LibrarySearch()
    assert elf._guest_for_cached("/opt/vendor/lib/libv.so.1", search) == (
        "/lib/x86_64-linux-gnu/libv.so.1"
    )
    assert elf._guest_for_cached("/usr/lib/x86_64-linux-gnu/libz.so.1", search) == (
        "/usr/lib/x86_64-linux-gnu/libz.so.1"
    )


def test_facts_are_remembered_across_processes_until_the_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later process (here: the in-process caches cleared) takes the facts from
    ``elf-facts.json`` without parsing; a rewritten file, or a bad memo, is parsed."""
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    binary = tmp_path / "true"
    shutil.copy2("/bin/true", binary)
    parsed: list[str] = []
    real_read = elf._read_facts

    def counting(handle: BinaryIO) -> ElfFacts:
        parsed.append("x")
        return real_read(handle)

    monkeypatch.setattr(elf, "_read_facts", counting)

    def fresh_process_facts() -> ElfFacts | None:
        elf._FACTS_MEMO.clear()
        elf._facts_cached.cache_clear()
        return elf_facts(binary)

    first = fresh_process_facts()
    assert first is not None and first.needed and len(parsed) == 1
    assert fresh_process_facts() == first and len(parsed) == 1  # from the memo
    shutil.copy2("/bin/sh", binary)  # another file at the same path
    assert fresh_process_facts() is not None and len(parsed) == 2  # parsed again
    (tmp_path / "cache" / "elf-facts.json").write_text("[")
    assert fresh_process_facts() is not None and len(parsed) == 3


def test_the_facts_memo_forgets_files_that_are_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    elf._FACTS_MEMO.clear()
    gone, kept = tmp_path / "gone", tmp_path / "kept"
    shutil.copy2("/bin/true", gone)
    shutil.copy2("/bin/true", kept)
    elf_facts(gone)
    gone.unlink()
    elf_facts(kept)
    memo = json.loads((tmp_path / "cache" / "elf-facts.json").read_text())
    assert list(memo) == [os.path.realpath(kept)]


def test_threads_share_the_facts_memo_safely(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel image builds in one process (threads) read and add entries at once: one
    thread's pruning walk over the memo must not see another's insert
    ("dictionary changed size during iteration", seen in CI)."""
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    elf._FACTS_MEMO.clear()
    others = tmp_path / "others"
    others.mkdir()
    memo = elf._facts_memo()
    for i in range(2000):  # existing files: every write walks them all
        (others / str(i)).touch()
        memo[str(others / str(i))] = {"identity": [], "facts": None}
    binaries = []
    for i in range(24):
        binaries.append(tmp_path / f"true{i}")
        shutil.copy2("/bin/true", binaries[-1])
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def facts_of(mine: list[Path]) -> None:
        start.wait(timeout=30)
        try:
            for path in mine:
                assert elf_facts(path) is not None
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=facts_of, args=(binaries[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    kept = json.loads((tmp_path / "cache" / "elf-facts.json").read_text())
    assert {os.path.realpath(b) for b in binaries} <= set(kept)
