"""The ktstr pytest plugin (entry point ``pytest11``).

``@ktstr_test`` functions are parametrized here into variants (topology, flag profile,
kernel; with ``--ktstr-gauntlet`` every accepted preset x profile x kernel). Each variant
boots its own VM; a crashed VM fails that variant only. Sidecar JSON files land in
``--ktstr-results`` and a summary table ends the session.

The ``--ktstr-*`` options become one ``KtstrOptions`` (``ktstr_options``, on first use),
kept on the config under ``OPTIONS``. Every xdist worker builds its own from the options
it receives. Everything reaches the runs through ``KtstrSession`` and ``RunRequest``, never
through ``os.environ``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ktstr.errors import UserError

if TYPE_CHECKING:
    from ktstr.testkit.session import KtstrOptions, KtstrSession
    from ktstr.testkit.variants import KernelChoice

# Only what every pytest process needs is imported here: a pytest-xdist controller runs
# no test, and it cannot start its workers before this module is imported. What the
# tests need (specs, variants, sidecars, and pydantic itself) is imported by the hooks
# that use it; the controller only checks the options and, at its end, prints the table.

#: ``--ktstr-accel`` (``ktstr.vm.host.AccelRequest``'s values; a unit test keeps them equal)
ACCEL_CHOICES = ("auto", "kvm", "tcg")

#: the typed ``--ktstr-*`` options of this pytest process (``pytest_configure``)
OPTIONS = pytest.StashKey["KtstrOptions"]()
_KERNELS = pytest.StashKey["list[KernelChoice]"]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("ktstr", "ktstr scheduler tests")
    g.addoption("--ktstr-kernel", action="append", default=[], metavar="SPEC",
                help="Kernel for @ktstr_test (repeatable; more than one adds a kernel "
                "dimension to test ids). Default: $KTSTR_KERNEL, else the newest cached "
                "kernel with sched_ext.")
    g.addoption("--ktstr-gauntlet", action="store_true", default=False,
                help="Expand every @ktstr_test over accepted presets x flag profiles.")
    g.addoption("--ktstr-accel", default="auto", choices=list(ACCEL_CHOICES),
                help="auto (KVM when it works, else TCG), kvm or tcg.")
    g.addoption("--ktstr-keep", action="store_true", default=False,
                help="Keep every run directory (console, argv, image), not only failed ones.")
    g.addoption("--ktstr-no-repro", action="store_true", default=False,
                help="Do not rerun a failed run with a scheduling trace (by default a FAIL "
                "is rerun once, traced, and marked flaky if it does not recur).")
    g.addoption("--ktstr-results", default="ktstr-results", metavar="DIR",
                help="Where sidecar JSON files go (default: ./ktstr-results).")
    g.addoption("--ktstr-cold-boot", action="store_true", default=False,
                help="Boot every VM from scratch instead of restoring a snapshot (the same "
                "as env KTSTR_SNAPSHOTS=0).")
    g.addoption("--ktstr-cpu-budget", type=int, default=0, metavar="N",
                help="Host CPUs all VMs may use at once, across xdist workers (default: "
                "$KTSTR_CPU_BUDGET, else all). A VM holds min(vCPUs, N) of them while it runs.")


def _budget(config: pytest.Config) -> int:
    budget = int(config.getoption("--ktstr-cpu-budget") or 0)
    if budget < 0:
        raise pytest.UsageError(f"--ktstr-cpu-budget={budget}: give a whole number of "
                                "CPUs >= 1 (0: $KTSTR_CPU_BUDGET, else all)")
    return budget


def options_from(config: pytest.Config) -> KtstrOptions:
    """The ``--ktstr-*`` options, typed and checked (a bad value is a usage error)."""
    from ktstr.testkit.session import KtstrOptions
    from ktstr.vm.host import AccelRequest

    budget = _budget(config)
    return KtstrOptions(
        kernels=tuple(config.getoption("--ktstr-kernel") or ()),
        gauntlet=bool(config.getoption("--ktstr-gauntlet")),
        accel=AccelRequest(config.getoption("--ktstr-accel")),
        keep=bool(config.getoption("--ktstr-keep")),
        repro=not config.getoption("--ktstr-no-repro"),
        results_dir=Path(config.getoption("--ktstr-results")).resolve(),
        cold_boot=bool(config.getoption("--ktstr-cold-boot")),
        cpu_budget=budget or None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ktstr: a @ktstr_test scheduler test (boots VMs)")
    config.stash[_STARTED] = time.time()
    _budget(config)  # a usage error at once, in the controller too


def ktstr_options(config: pytest.Config) -> KtstrOptions:
    """This process's ``KtstrOptions``, made on first use (a pytest-xdist controller
    never needs them)."""
    if OPTIONS not in config.stash:
        config.stash[OPTIONS] = options_from(config)
    return config.stash[OPTIONS]


def _kernel_choices(config: pytest.Config) -> list[KernelChoice]:
    if _KERNELS in config.stash:
        return config.stash[_KERNELS]
    from ktstr.kernel.resolve import resolve_kernel
    from ktstr.testkit.variants import KernelChoice

    specs = list(ktstr_options(config).kernels)
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
    from ktstr.testkit.spec import spec_of
    from ktstr.testkit.variants import expand_variants

    spec = spec_of(metafunc.function)
    if spec is None or "ktstr_variant" not in metafunc.fixturenames:
        return
    variants = expand_variants(spec, _kernel_choices(metafunc.config),
                               gauntlet=ktstr_options(metafunc.config).gauntlet)
    metafunc.parametrize("ktstr_variant", variants, ids=[v.id for v in variants])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from ktstr.testkit.spec import spec_of

    for item in items:
        if isinstance(item, pytest.Function) and spec_of(item.function) is not None:
            item.add_marker(pytest.mark.ktstr)


@pytest.fixture(scope="session")
def ktstr_session(request: pytest.FixtureRequest) -> KtstrSession:
    from ktstr.declare.topology import HostCapacity
    from ktstr.testkit.session import KtstrSession

    config = request.config
    worker = getattr(config, "workerinput", {}).get("workerid", "master")
    return KtstrSession.from_options(ktstr_options(config), host=HostCapacity.detect(),
                                     worker_id=worker)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or _STARTED not in config.stash:
        return
    from ktstr.testkit.summary import read_sidecar_json, summary_lines

    rows = read_sidecar_json(Path(config.getoption("--ktstr-results")).resolve(),
                             since=config.stash.get(_STARTED, 0.0))
    if not rows:
        return
    tr = terminalreporter
    tr.section("ktstr summary")
    for line in summary_lines(rows):
        tr.write_line(line)
