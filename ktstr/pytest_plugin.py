"""The ktstr pytest plugin (entry point ``pytest11``).

``@ktstr_test`` functions are parametrized here into variants (topology, flag profile,
kernel; with ``--ktstr-gauntlet`` every accepted preset x profile x kernel). Each variant
boots its own VM; a crashed VM fails that variant only. Sidecar JSON files land in
``--ktstr-results`` and a summary table ends the session.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from ktstr.declare.topology import HostCapacity
from ktstr.errors import UserError
from ktstr.testkit.decorator import spec_of
from ktstr.testkit.session import KtstrSession
from ktstr.testkit.sidecar import read_sidecars
from ktstr.testkit.variants import KernelChoice, expand_variants
from ktstr.vm.host import AccelRequest

_KERNELS = pytest.StashKey[list[KernelChoice]]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("ktstr", "ktstr scheduler tests")
    g.addoption("--ktstr-kernel", action="append", default=[], metavar="SPEC",
                help="Kernel for @ktstr_test (repeatable; more than one adds a kernel "
                "dimension to test ids). Default: $KTSTR_KERNEL, else the newest cached "
                "kernel with sched_ext.")
    g.addoption("--ktstr-gauntlet", action="store_true", default=False,
                help="Expand every @ktstr_test over accepted presets x flag profiles.")
    g.addoption("--ktstr-accel", default="auto", choices=[a.value for a in AccelRequest],
                help="auto (KVM when it works, else TCG), kvm or tcg.")
    g.addoption("--ktstr-keep", action="store_true", default=False,
                help="Keep every run directory (console, argv, image), not only failed ones.")
    g.addoption("--ktstr-results", default="ktstr-results", metavar="DIR",
                help="Where sidecar JSON files go (default: ./ktstr-results).")
    g.addoption("--ktstr-cpu-budget", type=int, default=0, metavar="N",
                help="Host CPUs all VMs may use at once, across xdist workers (default: "
                "$KTSTR_CPU_BUDGET, else all). A VM holds min(vCPUs, N) of them while it runs.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ktstr: a @ktstr_test scheduler test (boots VMs)")
    config.stash[_STARTED] = time.time()
    budget = int(config.getoption("--ktstr-cpu-budget") or 0)
    if budget:
        # every VM (boot()) takes its tokens from this budget, in every xdist worker
        os.environ["KTSTR_CPU_BUDGET"] = str(budget)


def _kernel_choices(config: pytest.Config) -> list[KernelChoice]:
    if _KERNELS in config.stash:
        return config.stash[_KERNELS]
    from ktstr.kernel.resolve import resolve_kernel

    specs: list[str] = list(config.getoption("--ktstr-kernel") or [])
    choices: list[KernelChoice] = []
    for spec in specs or [None]:  # type: ignore[list-item]
        try:
            k = resolve_kernel(spec)
            label = k.version
        except UserError:
            label = spec or "default"
        choices.append(KernelChoice(spec=spec, label=label))
    config.stash[_KERNELS] = choices
    return choices


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    spec = spec_of(metafunc.function)
    if spec is None or "ktstr_variant" not in metafunc.fixturenames:
        return
    variants = expand_variants(spec, _kernel_choices(metafunc.config),
                               gauntlet=bool(metafunc.config.getoption("--ktstr-gauntlet")))
    metafunc.parametrize("ktstr_variant", variants, ids=[v.id for v in variants])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and spec_of(item.function) is not None:
            item.add_marker(pytest.mark.ktstr)


@pytest.fixture(scope="session")
def ktstr_session(request: pytest.FixtureRequest) -> KtstrSession:
    config = request.config
    worker = getattr(config, "workerinput", {}).get("workerid", "master")
    return KtstrSession(
        kernels=tuple(config.getoption("--ktstr-kernel") or ()),
        gauntlet=bool(config.getoption("--ktstr-gauntlet")),
        accel=AccelRequest(config.getoption("--ktstr-accel")),
        keep=bool(config.getoption("--ktstr-keep")),
        results_dir=Path(config.getoption("--ktstr-results")).resolve(),
        host=HostCapacity.detect(), worker_id=worker,
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    rows = read_sidecars(Path(config.getoption("--ktstr-results")).resolve(),
                         since=config.stash.get(_STARTED, 0.0))
    if not rows:
        return
    tr = terminalreporter
    tr.section("ktstr summary")
    names = [str(r["test"]).split("::", 1)[-1] for r in rows]
    width = min(60, max(len(n) for n in names))
    tr.write_line(f"{'TEST':<{width}}  {'OUTCOME':<8} {'VERDICT':<7} {'SCHEDULER':<12} "
                  f"{'KERNEL':<10} {'TOPOLOGY':<10} REASON")
    for name, r in sorted(zip(names, rows, strict=True)):
        verdict = (r.get("verdict") or "-").upper()
        kernel = r.get("kernel") or {}
        k = kernel.get("version") or kernel.get("spec") or "-"
        why = " ".join(r.get("reasons") or []) or (r.get("message") or "")
        if r.get("outcome") == "passed" and verdict == "FAIL":
            why = "expected: " + why
        tr.write_line(f"{name[-width:]:<{width}}  {r.get('outcome', '?'):<8} {verdict:<7} "
                      f"{r.get('scheduler') or '-':<12} {k:<10} "
                      f"{r['topology_requested']:<10} {why.splitlines()[0][:70] if why else ''}")
