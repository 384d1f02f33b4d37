"""`ktstr kernel build` without compiling: fragments, merging, the dropped-option report
(from a .config recorded from linux-source 7.2.13), source identities and cache keys,
build dependencies, command lines, the kbuild progress parser, and a cache hit."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from ktstr.errors import UserError
from ktstr.kernel import build as kbuild
from ktstr.kernel import pahole
from ktstr.kernel.builddeps import (
    BUILD_DEPS,
    check_pahole,
    missing_deps,
    missing_error,
    pahole_version,
    required_pahole,
)
from ktstr.kernel.cache import KernelCache, KernelSource
from ktstr.kernel.id import KernelId
from ktstr.kernel.kconfig import (
    DropReason,
    kconfig_symbols,
    merge_fragments,
    parse_fragment,
)
from ktstr.kernel.kconfig import dropped_options as find_dropped
from ktstr.kernel.resolve import cached_version
from ktstr.kernel.srcid import (
    EMPTY_SHA256,
    SourceIdentity,
    SourceKind,
    build_dir_name,
    build_key,
    git_changes_digest,
    identify,
    listing_digest,
    makefile_version,
)
from ktstr.testing.kernel import SCHED_EXT_CONFIG, fake_bzimage

DATA = Path(__file__).parent / "data" / "kconfig"


# --- fragments ------------------------------------------------------------------------------

def test_parse_fragment_values_comments_and_unset() -> None:
    frag = parse_fragment("# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\n"
                          'CONFIG_S="x y"\nCONFIG_N=0x10\nCONFIG_A=m\n', "f.config")
    assert [(o.name, o.value, o.origin) for o in frag.options] == [
        ("B", "n", "f.config:4"), ("S", '"x y"', "f.config:5"), ("N", "0x10", "f.config:6"),
        ("A", "m", "f.config:7")]


@pytest.mark.parametrize("line", ["SCHED_CLASS_EXT=y", "CONFIG_A", "CONFIG_A=", "config A=y"])
def test_parse_fragment_rejects_bad_lines_with_file_and_line(line: str) -> None:
    with pytest.raises(UserError, match=r"my\.config:2"):
        parse_fragment(f"CONFIG_OK=y\n{line}\n", "my.config")


def test_base_fragment_is_valid_and_asks_for_what_ktstr_needs() -> None:
    base = merge_fragments([kbuild.base_fragment()])
    for name in ("SCHED_CLASS_EXT", "DEBUG_INFO_BTF", "BPF_SYSCALL", "BPF_JIT", "NUMA",
                 "NUMA_EMU", "SCHED_SMT", "SCHED_MC", "CGROUPS", "CPUSETS", "DEBUG_FS",
                 "FTRACE", "SCHEDSTATS", "DEVTMPFS", "BLK_DEV_INITRD", "VIRTIO_CONSOLE",
                 "VIRTIO_PCI", "SERIAL_8250_CONSOLE"):
        assert base.value(name) == "y", name
    assert base.value("MODULES") == "n"


def test_merge_later_wins_keeps_first_position_and_records_redefinitions() -> None:
    a = parse_fragment("CONFIG_A=y\nCONFIG_B=y\nCONFIG_HZ=250\n", "a")
    b = parse_fragment("# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_HZ=250\n", "b")
    c = parse_fragment("CONFIG_A=m\n", "c")
    merged = merge_fragments([a, b, c])
    assert merged.render() == "CONFIG_A=m\n# CONFIG_B is not set\nCONFIG_HZ=250\nCONFIG_C=y\n"
    assert [(r.name, r.old.origin, r.new.origin) for r in merged.redefinitions] == [
        ("B", "a:2", "b:1"), ("A", "a:1", "c:1")]
    # the same value again is no redefinition
    assert "HZ" not in {r.name for r in merged.redefinitions}


def test_config_digest_ignores_comments_and_origins_but_not_values() -> None:
    one = merge_fragments([parse_fragment("# x\nCONFIG_A=y\n", "one")])
    two = merge_fragments([parse_fragment("CONFIG_A=y\n", "two")])
    three = merge_fragments([parse_fragment("CONFIG_A=m\n", "two")])
    assert one.digest == two.digest != three.digest


# --- the dropped-option report from a recorded .config ---------------------------------------

def test_dropped_options_from_recorded_7_2_config() -> None:
    """The .config was produced by allnoconfig + olddefconfig on linux-source 7.2.13 with
    the base fragment and user.fragment (a typo, an option whose dependency is off, and
    options that did take)."""
    merged = merge_fragments([kbuild.base_fragment(),
                              parse_fragment((DATA / "user.fragment").read_text(), "user")])
    config = (DATA / "7.2.13-ktstr-user.config").read_text()
    known = frozenset({"DEBUG_INFO_BTF_MODULES", "SCHED_CLASS_EXT"})
    dropped = find_dropped(merged, config, known)
    assert [(d.name, d.reason, d.origin) for d in dropped] == [
        ("SCHED_CLAS_EXT", DropReason.UNKNOWN, "user:2"),
        ("DEBUG_INFO_BTF_MODULES", DropReason.HIDDEN, "user:3")]
    assert "typo" in dropped[0].describe() and "dependency" in dropped[1].describe()
    # everything the base fragment asked for survived, but NR_CPUS, which user set to 64
    assert [(d.name, d.got) for d in find_dropped(merge_fragments([kbuild.base_fragment()]),
                                                  config)] == [("NR_CPUS", "64")]


def test_dropped_changed_value_and_unset_and_numbers() -> None:
    merged = merge_fragments([parse_fragment(
        "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_N=0x10\nCONFIG_S=\"v\"\n", "f")])
    config = "CONFIG_A=m\nCONFIG_C=y\nCONFIG_N=16\nCONFIG_S=\"w\"\n"
    dropped = find_dropped(merged, config)
    assert [(d.name, d.got, d.reason) for d in dropped] == [
        ("A", "m", DropReason.CHANGED), ("S", '"w"', DropReason.CHANGED)]
    assert find_dropped(merged, config.replace("CONFIG_C=y", "# CONFIG_C is not set"))[1] \
        .describe().endswith("became not set: a dependency is not met")


def test_kconfig_symbols() -> None:
    text = "config FOO\n\tbool\nmenuconfig BAR\n  config BAZ_2\n# config NOT\n"
    assert kconfig_symbols([text]) == {"FOO", "BAR", "BAZ_2"}


# --- source identity and keys -----------------------------------------------------------------

def test_makefile_version() -> None:
    head = "VERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 13\nEXTRAVERSION =\nNAME = Baby Opossum\n"
    assert makefile_version(head) == "7.2.13"
    assert makefile_version(head.replace("EXTRAVERSION =", "EXTRAVERSION = -rc7")) == \
        "7.2.13-rc7"
    with pytest.raises(UserError):
        makefile_version("all:\n")


def _ident(**kw: object) -> SourceIdentity:
    fields: dict[str, object] = {"kind": SourceKind.GIT, "root": Path("/src/linux"),
                                 "version": "7.2.13", "commit": "a" * 40,
                                 "changes_sha256": EMPTY_SHA256}
    fields.update(kw)
    return SourceIdentity.model_validate(fields)


def test_dirty_diff_changes_the_key_but_not_the_build_dir() -> None:
    cfg = "c" * 64
    clean = _ident()
    dirty = _ident(changes_sha256=git_changes_digest(b"diff --git a/x b/x\n", {}))
    other = _ident(changes_sha256=git_changes_digest(b"diff --git a/y b/y\n", {}))
    assert not clean.dirty and dirty.dirty
    keys = {build_key(i, cfg) for i in (clean, dirty, other)}
    assert len(keys) == 3
    assert all(k.startswith("7.2.13+build-") for k in keys)
    # another commit, another config: other keys; the location is not part of the key
    assert build_key(_ident(commit="b" * 40), cfg) not in keys
    assert build_key(clean, "d" * 64) not in keys
    assert build_key(_ident(root=Path("/elsewhere")), cfg) == build_key(clean, cfg)
    # incremental builds: one directory per tree location and config
    assert build_dir_name(clean.root, cfg) == build_dir_name(dirty.root, cfg)
    assert build_dir_name(clean.root, cfg) != build_dir_name(Path("/elsewhere/linux"), cfg)
    assert build_dir_name(clean.root, cfg) != build_dir_name(clean.root, "d" * 64)


def test_untracked_files_count_as_changes() -> None:
    assert git_changes_digest(b"", {}) == EMPTY_SHA256
    assert git_changes_digest(b"", {"new.c": b"int x;"}) != EMPTY_SHA256
    assert git_changes_digest(b"", {"new.c": b"int x;"}) != \
        git_changes_digest(b"", {"new.c": b"int y;"})


def test_build_key_sorts_below_debian_at_the_same_version() -> None:
    built = build_key(_ident(), "c" * 64)
    assert "7.2.13+deb14-amd64" > built > "7.2.12+deb13-amd64"


def test_listing_digest_is_order_independent_and_sees_mtime() -> None:
    a = [("Makefile", 10, 1), ("kernel/sched/ext.c", 100, 2)]
    assert listing_digest(a) == listing_digest(list(reversed(a)))
    assert listing_digest(a) != listing_digest([("Makefile", 10, 1),
                                                ("kernel/sched/ext.c", 100, 3)])


def _fake_tree(root: Path, sublevel: int = 13) -> Path:
    for d in ("arch/x86", "kernel/sched"):
        (root / d).mkdir(parents=True)
    (root / "Makefile").write_text(f"VERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = {sublevel}\n"
                                   "EXTRAVERSION =\n")
    (root / "Kconfig").write_text("config SCHED_CLASS_EXT\n\tbool\n")
    (root / "kernel/sched/ext.c").write_text("/* ext */\n")
    return root


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_identify_git_tree_clean_then_dirty(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path / "linux")
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    clean = identify(tree)
    assert clean.kind is SourceKind.GIT and clean.version == "7.2.13" and not clean.dirty
    (tree / "kernel/sched/ext.c").write_text("/* patched */\n")
    dirty = identify(tree)
    assert dirty.dirty and dirty.commit == clean.commit
    assert build_key(dirty, "c" * 64) != build_key(clean, "c" * 64)
    (tree / "kernel/sched/ext.c").write_text("/* ext */\n")
    assert identify(tree).digest == clean.digest


def test_identify_plain_tree_and_tarball(tmp_path: Path) -> None:
    tree = _fake_tree(tmp_path / "linux")
    plain = identify(tree)
    assert plain.kind is SourceKind.TREE
    (tree / "kernel/sched/ext.c").write_text("/* patched, longer */\n")
    assert identify(tree).digest != plain.digest
    tar = identify(tree, package="linux-source-7.2=7.2.13-1")
    assert tar.kind is SourceKind.TARBALL and "7.2.13-1" in tar.describe()


def test_identify_rejects_what_is_not_a_kernel_tree(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a directory"):
        identify(tmp_path / "nope")
    (tmp_path / "Makefile").write_text("all:\n")
    with pytest.raises(UserError, match="not a kernel source tree: no Kconfig"):
        identify(tmp_path)


# --- build dependencies ---------------------------------------------------------------------

def test_missing_dependencies_are_named_with_their_debian_package() -> None:
    have = {"gcc", "make", "ld", "bc", "perl", "nice"}
    missing = missing_deps(BUILD_DEPS, which=lambda t: t if t in have else None,
                           exists=lambda p: p.endswith("zlib.h"))
    assert [(d.name, d.package) for d in missing] == [
        ("flex", "flex"), ("bison", "bison"), ("pahole", "dwarves"), ("gelf.h", "libelf-dev")]
    msg = str(missing_error(missing))
    assert "pahole (Debian package dwarves)" in msg
    assert "apt-get install bison dwarves flex libelf-dev" in msg
    assert missing_deps(BUILD_DEPS, which=lambda t: t, exists=lambda p: True) == []


def test_pahole_version_against_the_trees_btf_requirement() -> None:
    kconfig = ("config DEBUG_INFO_BTF\n\tbool \"Generate BTF type information\"\n"
               "\tdepends on !DEBUG_INFO_SPLIT && !DEBUG_INFO_REDUCED\n"
               "\tdepends on BPF_SYSCALL\n\tdepends on PAHOLE_VERSION >= 122\n"
               "\thelp\n\t  text\n\nconfig PAHOLE_HAS_BTF_TAG\n"
               "\tdef_bool PAHOLE_VERSION >= 123\n")
    assert required_pahole(kconfig) == 122
    assert pahole_version("v1.24\n") == 124 and pahole_version("1.30") == 130
    assert pahole_version("") is None
    check_pahole(124, 122)
    check_pahole(None, None)
    with pytest.raises(UserError, match=r"pahole 1\.21 is too old .* needs 1\.22.*dwarves"):
        check_pahole(121, 122)


def test_kfunc_tag_need_from_makefile_btf_and_the_wrapper() -> None:
    mk = ("pahole-flags-$(call test-ge, $(pahole-ver), 126)  = -j$(JOBS) "
          "--btf_features=encode_force,var,float,enum64,decl_tag,type_tag,optimized_func,"
          "consistent_func,decl_tag_kfuncs\n")
    assert pahole.kfunc_tags_need(mk) == 126
    assert pahole.kfunc_tags_need("pahole-flags-y += --btf_gen_floats\n") is None
    need = pahole.PaholeNeed(btf=122, kfunc_tags=126)
    assert need.minimum == 126 and pahole.PaholeNeed().minimum is None
    script = pahole.wrapper_script(Path("/c/tools/pahole-1.30-1"))
    assert script.startswith("#!/bin/sh\n")
    lib = "/c/tools/pahole-1.30-1/root/usr/lib/x86_64-linux-gnu"
    assert (f'exec "{lib}/ld-linux-x86-64.so.2" --library-path "{lib}" '
            '"/c/tools/pahole-1.30-1/root/usr/bin/pahole" "$@"') in script


def test_choose_pahole_keeps_a_new_enough_host_pahole(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _fake_tree(tmp_path / "linux")
    (tree / "scripts").mkdir()
    (tree / "scripts/Makefile.btf").write_text(
        "pahole-flags-$(call test-ge, $(pahole-ver), 126) = --btf_features=decl_tag_kfuncs\n")
    from ktstr.kernel.progress import NullProgress

    monkeypatch.setattr(pahole, "host_pahole", lambda: ("/usr/bin/pahole", 130))
    assert pahole.choose_pahole(tree, None, NullProgress()) is None
    monkeypatch.setattr(pahole, "host_pahole", lambda: ("/usr/bin/pahole", 124))
    with pytest.raises(UserError, match=r"needs pahole 1\.26 .* host has 124"):
        pahole.choose_pahole(tree, None, NullProgress())


def test_toolchain_is_part_of_the_key_and_a_change_relinks(tmp_path: Path) -> None:
    from ktstr.kernel.progress import NullProgress

    cfg = "c" * 64
    a = kbuild.keyed_config_digest(cfg, "gcc 12; pahole v1.24")
    b = kbuild.keyed_config_digest(cfg, "gcc 12; pahole v1.30")
    assert a != b and build_key(_ident(), a) != build_key(_ident(), b)
    out = tmp_path / "out"
    out.mkdir()
    for name in kbuild.LINKED_IMAGES:
        (out / name).write_text("elf")
    (out / kbuild.TOOLCHAIN_FILE).write_text("gcc 12; pahole v1.30\n")
    kbuild.relink_if_toolchain_changed(out, "gcc 12; pahole v1.30", NullProgress())
    assert all((out / n).exists() for n in kbuild.LINKED_IMAGES)
    kbuild.relink_if_toolchain_changed(out, "gcc 12; pahole v1.31", NullProgress())
    assert not any((out / n).exists() for n in kbuild.LINKED_IMAGES)


# --- command lines and progress --------------------------------------------------------------

def test_command_lines() -> None:
    tree, out, frag = Path("/src"), Path("/cache/kbuild/x"), Path("/cache/kbuild/x/f")
    first, second = kbuild.configure_argvs(tree, out, frag)
    assert first == ["make", "-C", "/src", "O=/cache/kbuild/x", "ARCH=x86_64",
                     "KCONFIG_ALLCONFIG=/cache/kbuild/x/f", "allnoconfig"]
    assert second[-1] == "olddefconfig"
    argv = kbuild.build_argv(tree, out, 2)
    assert argv[:3] == ["nice", "-n", str(kbuild.NICENESS)]
    assert argv[3:] == ["make", "-C", "/src", "O=/cache/kbuild/x", "ARCH=x86_64", "-j2",
                        "bzImage"]
    ph = Path("/cache/tools/pahole-1.30-1/pahole")
    assert "PAHOLE=/cache/tools/pahole-1.30-1/pahole" in kbuild.build_argv(tree, out, 2,
                                                                          pahole=ph)
    assert all(f"PAHOLE={ph}" in a for a in kbuild.configure_argvs(tree, out, frag, ph))


def test_kbuild_progress_parser() -> None:
    tally = kbuild.BuildTally()
    for line in ["make[1]: Entering directory '/x'\n", "  CC      kernel/sched/core.o\n",
                 "  AR      kernel/built-in.a\n", "  CC [M]  fs/foo.o\n",
                 "  BTF     .btf.vmlinux.bin.o\n", "In file included from x.c:1:\n"]:
        tally.feed(line)
    assert tally.compiled == 1 and tally.steps == 4
    assert tally.last == kbuild.KbuildStep(action="BTF", target=".btf.vmlinux.bin.o")
    assert tally.summary(75.0).startswith("make: 1m15s, 1 C files compiled, 4 steps")
    assert kbuild.parse_kbuild_line("warning: foo") is None
    tools = kbuild.BuildTally(strip="/cache/kbuild/x/")
    tools.feed("  CC      /cache/kbuild/x/tools/objtool/check.o\n")
    assert tools.last is not None and tools.last.target == "tools/objtool/check.o"


# --- cache hits and version resolution ------------------------------------------------------

def _record(key: str, ident: SourceIdentity, out: Path) -> kbuild.BuildRecord:
    return kbuild.BuildRecord(key=key, source=ident, fragments=["kernels/ktstr.config"],
                              config_sha256="c" * 64, build_dir=out, jobs=2,
                              make_seconds=1.0, built_at=dt.datetime.now(dt.UTC))


def _fake_build_dir(out: Path) -> None:
    (out / "arch/x86/boot").mkdir(parents=True)
    (out / "arch/x86/boot/bzImage").write_bytes(fake_bzimage("7.2.13-ktstr"))
    (out / ".config").write_text(SCHED_EXT_CONFIG)
    (out / "include/config").mkdir(parents=True)
    (out / "include/config/kernel.release").write_text("7.2.13-ktstr\n")


def test_second_build_of_the_same_source_is_a_cache_hit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The install step on a fake build directory, then a second ``build`` of the same
    source and config returns the entry without configuring or compiling."""
    tree = _fake_tree(tmp_path / "linux")
    cache = KernelCache(tmp_path / "kernels")
    builder = kbuild.KernelBuilder(cache=cache, build_root=tmp_path / "kbuild")
    ident = identify(tree)
    merged = merge_fragments([kbuild.base_fragment()])
    # the fake tree has no scripts/Makefile.btf: the host's pahole is used
    toolchain = kbuild.toolchain_text(None)
    key = build_key(ident, kbuild.keyed_config_digest(merged.digest, toolchain))
    out = tmp_path / "out"
    _fake_build_dir(out)
    installed = cache.ensure(key, lambda tmp: builder._install(out, _record(key, ident, out),
                                                               tmp))
    assert installed.source is KernelSource.TREE and installed.release == "7.2.13-ktstr"
    assert installed.version == "7.2.13" and installed.sched_ext
    monkeypatch.setattr(kbuild, "check_build_deps", lambda tree: None)

    def no_make(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache hit must not run make")

    monkeypatch.setattr(kbuild, "run_logged", no_make)
    result = builder.build(str(tree))
    assert result.cache_hit and result.kernel.key == key
    assert result.record.source.digest == ident.digest
    # an edit is a different source: not a hit (and make would run)
    (tree / "kernel/sched/ext.c").write_text("/* patched, longer */\n")
    with pytest.raises(AssertionError, match="must not run make"):
        builder.build(str(tree))


def test_version_spec_prefers_the_debian_kernel_over_a_build(tmp_path: Path) -> None:
    cache = KernelCache(tmp_path / "kernels")
    from ktstr.kernel.cache import finish_entry

    def entry(key: str, source: KernelSource) -> None:
        def fill(tmp: Path) -> object:
            (tmp / "vmlinuz").write_bytes(fake_bzimage(key))
            (tmp / "config").write_text(SCHED_EXT_CONFIG)
            return finish_entry(tmp, image="vmlinuz", config="config", key=key,
                                version="7.2.13", source=source,
                                flavour="amd64" if source is KernelSource.DEBIAN else None)
        cache.ensure(key, fill)  # type: ignore[arg-type]

    built = build_key(_ident(), "c" * 64)
    entry(built, KernelSource.TREE)
    entry("7.2.13+deb14-amd64", KernelSource.DEBIAN)
    found = cached_version(cache, KernelId.parse("7.2"))
    assert found is not None and found.key == "7.2.13+deb14-amd64"
    assert cache.get(built) is not None


def test_series_spec_only_takes_a_series(tmp_path: Path) -> None:
    builder = kbuild.KernelBuilder(cache=KernelCache(tmp_path / "k"),
                                   resolve_series=lambda s: kbuild.SourceSpec(tree=tmp_path))
    assert builder.source("7.2").tree == tmp_path
    with pytest.raises(UserError, match="give a series"):
        builder.source("7.2.13")
    assert builder.source("./linux").tree == Path("./linux")


def test_unreadable_fragment_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read config fragment"):
        kbuild.fragment_from_file(tmp_path / "missing.config")


def test_cli_build_of_a_directory_that_is_no_kernel_tree_is_a_user_error(
        tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ktstr.cli.root import cli

    result = CliRunner().invoke(cli, ["kernel", "build", str(tmp_path)])
    assert isinstance(result.exception, UserError)  # exit code 2 in ktstr.cli.main
    assert "is not a kernel source tree" in str(result.exception)


def test_cli_build_bad_fragment_line_is_a_user_error_naming_file_and_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ktstr.cli.root import cli

    tree = _fake_tree(tmp_path / "linux")
    frag = tmp_path / "bad.config"
    frag.write_text("CONFIG_SCHED_DEBUG=y\nSCHED_CLASS_EXT=y\n")
    monkeypatch.setattr(kbuild, "check_build_deps", lambda tree: None)
    result = CliRunner().invoke(cli, ["kernel", "build", str(tree), "--config", str(frag)])
    assert isinstance(result.exception, UserError)
    assert f"{frag}:2: not a config line" in str(result.exception)


def test_clean_build_dirs_skips_a_build_in_progress(tmp_path: Path) -> None:
    from ktstr.kernel.clean import idle_build_dirs
    from ktstr.kernel.locking import file_lock

    root = tmp_path / "kbuild"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    with file_lock(root / ".locks" / "b.lock"):
        assert idle_build_dirs(root) == [root / "a"]
    assert idle_build_dirs(root) == [root / "a", root / "b"]
    assert idle_build_dirs(tmp_path / "none") == []
