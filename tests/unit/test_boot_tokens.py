"""How many machine-wide CPU tokens ``ktstr.run.boot.boot`` holds on each path: a
restored VM holds what its work keeps busy (``host_cpus``), a cold boot its vCPUs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ktstr.declare.topology import Topology
from ktstr.guest.protocol import Mode, RunPlan
from ktstr.results.model import VmOutcome
from ktstr.run import boot as boot_mod
from ktstr.run.boot import BootOutcome, _Said
from ktstr.vm.argv import Accel
from ktstr.vm.host import AccelChoice

T8 = Topology(1, 2, 2, 2)


def _run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, restores: bool,
         host_cpus: int | None) -> list[int]:
    held: list[int] = []

    @contextlib.contextmanager
    def tokens(vcpus: int, budget: int, directory: Path | None = None,
               say: object = None) -> Iterator[int]:
        held.append(vcpus)
        yield vcpus

    def restored(*_a: object) -> tuple[object, _Said]:
        return (object(), _Said(boot="restored")) if restores else (None, _Said())

    def cold(*_a: object) -> tuple[object, _Said]:
        return object(), _Said(boot="cold")

    monkeypatch.setattr(boot_mod, "cpu_tokens", tokens)
    monkeypatch.setattr(boot_mod, "cpu_budget", lambda: 2)
    monkeypatch.setattr(boot_mod, "_key", lambda _cfg: (object(), ""))
    monkeypatch.setattr(boot_mod, "_restored", restored)
    monkeypatch.setattr(boot_mod, "_boot_once", cold)
    monkeypatch.setattr(boot_mod, "_outcome", lambda _vm, said, _accel, _t0: BootOutcome(
        vm_outcome=VmOutcome.OK, boot=said.boot))
    boot_mod.boot(kernel=tmp_path / "vmlinuz", image=tmp_path / "base.cpio",
                  plan=RunPlan(mode=Mode.VERIFY), cmdline=(), topology=T8,
                  accel=AccelChoice(accel=Accel.TCG, reason="test"), run_dir=tmp_path,
                  work_timeout_s=10,
                  snapshots=True, host_cpus=host_cpus)
    return held


def test_a_restored_verifier_vm_holds_one_token(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    assert _run(monkeypatch, tmp_path, restores=True, host_cpus=1) == [1]


def test_a_restored_run_holds_its_vcpus(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    assert _run(monkeypatch, tmp_path, restores=True, host_cpus=None) == [8]


def test_a_cold_boot_holds_its_vcpus_even_for_a_verifier_cell(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # no snapshot yet: the restore attempt holds one, then the boot waits for all eight
    assert _run(monkeypatch, tmp_path, restores=False, host_cpus=1) == [1, 8]
