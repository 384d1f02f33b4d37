"""Accelerator choice and the timeout rule, with host facts injected."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr.declare.topology import Topology
from ktstr.errors import UserError
from ktstr.vm import host
from ktstr.vm.argv import Accel, TcgThreading
from ktstr.vm.host import AccelRequest, choose_accel, scaled_timeout


@pytest.fixture
def qemu10(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "qemu_version", lambda q: (10, 0, 2))


def test_tcg_requested(qemu10: None) -> None:
    c = choose_accel(AccelRequest.TCG, "q")
    assert c.accel is Accel.TCG and c.tcg_threading is TcgThreading.MULTI


def test_old_qemu_forces_single_threaded_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "qemu_version", lambda q: (7, 2, 0))
    c = choose_accel(AccelRequest.TCG, "q")
    assert c.tcg_threading is TcgThreading.SINGLE and "thread=single" in c.reason


def test_auto_without_kvm_device_is_tcg(qemu10: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "kvm_device_ok", lambda: (False, "/dev/kvm does not exist"))
    c = choose_accel(AccelRequest.AUTO, "q")
    assert c.accel is Accel.TCG and "/dev/kvm does not exist" in c.reason


def test_forced_kvm_without_device_is_a_user_error(
    qemu10: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host, "kvm_device_ok", lambda: (False, "/dev/kvm does not exist"))
    with pytest.raises(UserError, match="use --accel tcg or auto"):
        choose_accel(AccelRequest.KVM, "q")


def test_auto_probes_once_and_caches(qemu10: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "kvm_device_ok", lambda: (True, "/dev/kvm opens"))
    calls: list[int] = []

    def probe() -> tuple[bool, str]:
        calls.append(1)
        return False, "timeout: KVM internal error"

    first = choose_accel(AccelRequest.AUTO, "q", boot_probe=probe)
    second = choose_accel(AccelRequest.AUTO, "q", boot_probe=probe)
    assert calls == [1]
    assert first.accel is Accel.TCG and "KVM unusable: timeout" in first.reason
    assert second == first


def test_auto_uses_kvm_when_the_probe_boots(qemu10: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "kvm_device_ok", lambda: (True, "/dev/kvm opens"))
    c = choose_accel(AccelRequest.AUTO, "q", boot_probe=lambda: (True, "booted"))
    assert c.accel is Accel.KVM


def test_timeouts_scale_under_tcg_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KTSTR_TIMEOUT_SCALE", raising=False)
    small, big = Topology(1, 1, 2, 1), Topology(1, 2, 4, 2)
    assert scaled_timeout(10, Accel.KVM, big) == 10
    assert scaled_timeout(10, Accel.TCG, small) == 60
    assert scaled_timeout(10, Accel.TCG, big) == 60 + 1.5 * 12
    monkeypatch.setenv("KTSTR_TIMEOUT_SCALE", "2")
    assert scaled_timeout(10, Accel.KVM, small) == 20


# -- QEMU's own crash is an emulator fault, not the guest's doing --------------------------

def test_qemu_abort_is_an_emulator_fault_that_names_qemus_last_words() -> None:
    from ktstr.vm.machine import qemu_exit_gone
    stderr = ("qemu-system-x86_64: warning: host doesn't support requested feature\n"
              "qemu-system-x86_64: ../tcg/tcg.c:4042: tcg_reg_alloc_op: Assertion failed.\n")
    gone = qemu_exit_gone(-6, stderr, "hello (boot)")
    assert gone.kind == "emulator_fault"
    assert "SIGABRT" in gone.detail and "hello (boot)" in gone.detail
    assert "tcg_reg_alloc_op: Assertion failed" in gone.detail


def test_qemu_killed_from_outside_or_exiting_is_not_an_emulator_fault() -> None:
    from ktstr.vm.machine import qemu_exit_gone
    killed = qemu_exit_gone(-9, "", "end of run")
    assert killed.kind == "exited" and "SIGKILL" in killed.detail
    assert "nothing on stderr" in killed.detail
    plain = qemu_exit_gone(1, "qemu: could not load kernel\n", "hello (boot)")
    assert plain.kind == "exited" and "code 1" in plain.detail
    assert "could not load kernel" in plain.detail


def _fake_qemu(path: Path, version: str) -> Path:
    path.write_text(f"#!/bin/sh\necho 'QEMU emulator version {version} (fake)'\n")
    path.chmod(0o755)
    return path


def test_the_qemu_version_is_remembered_until_the_binary_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later process (here: the in-process cache cleared) reads the version from the
    memo instead of running QEMU; a replaced binary, or a bad memo, is asked again."""
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    asked: list[str] = []
    real_ask = host._ask_qemu_version

    def counting(qemu: str) -> tuple[int, int, int]:
        asked.append(qemu)
        return real_ask(qemu)

    monkeypatch.setattr(host, "_ask_qemu_version", counting)
    qemu = _fake_qemu(tmp_path / "qemu-system-x86_64", "10.0.2")

    def fresh_process_version() -> tuple[int, int, int]:
        host._qemu_version.cache_clear()
        return host.qemu_version(str(qemu))

    assert fresh_process_version() == (10, 0, 2) and len(asked) == 1
    assert fresh_process_version() == (10, 0, 2) and len(asked) == 1  # from the memo
    _fake_qemu(qemu, "10.1.0")  # another binary at the same path (a new mtime)
    assert fresh_process_version() == (10, 1, 0) and len(asked) == 2
    (tmp_path / "cache" / "qemu-version.json").write_text("{not json")
    assert fresh_process_version() == (10, 1, 0) and len(asked) == 3
    assert fresh_process_version() == (10, 1, 0) and len(asked) == 3
