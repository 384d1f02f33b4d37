"""The ``@ktstr_test(...)`` decorator; the spec it attaches lives in ``ktstr.testkit.spec``.

The test body runs **on the host**, in the pytest process: the guest has no Python, and
keeping the body on the host lets it make ordinary assertions on the ``RunResult`` (stats,
checks, the timeline) that ``ctx.run`` returns after the VM has finished.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ktstr.declare.base import build
from ktstr.declare.checks import Assert
from ktstr.declare.payload import Payload
from ktstr.declare.scheduler import EEVDF, Scheduler
from ktstr.declare.topology import TopologyConstraints
from ktstr.testkit.execute import run_test
from ktstr.testkit.spec import SPEC_ATTR, KtstrTestSpec

_CHECK_FIELDS = tuple(Assert.model_fields)
_CONSTRAINT_FIELDS = tuple(TopologyConstraints.model_fields)


def ktstr_test(
    *,
    scheduler: Scheduler = EEVDF,
    payload: Payload | None = None,
    workloads: Sequence[Payload] = (),
    llcs: int | None = None,
    cores: int | None = None,
    threads: int | None = None,
    numa_nodes: int | None = None,
    memory_mb: int | None = None,
    duration_s: float = 5.0,
    workers_per_cgroup: int | None = None,
    watchdog_timeout_s: float | None = None,
    extra_sched_args: Sequence[str] = (),
    required_flags: Sequence[str] = (),
    excluded_flags: Sequence[str] = (),
    expect_err: bool = False,
    config: str | None = None,
    **overrides: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a pytest test as a ktstr scheduler test. ``overrides`` take any check field of
    ``Assert`` (``max_spread_pct=20``, ``isolation=True``, ...) and any
    ``TopologyConstraints`` field (``min_llcs=2``, ``requires_smt=True``, ...).

    The test function takes one argument, ``ctx`` (a ``ktstr.Ctx``).
    """
    unknown = sorted(set(overrides) - set(_CHECK_FIELDS) - set(_CONSTRAINT_FIELDS))
    if unknown:
        raise TypeError(
            f"@ktstr_test got unknown argument(s) {', '.join(unknown)}; check fields: "
            f"{', '.join(_CHECK_FIELDS)}; constraint fields: {', '.join(_CONSTRAINT_FIELDS)}"
        )

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(fn).parameters)
        if params != ["ctx"]:
            raise TypeError(
                f"@ktstr_test function {fn.__qualname__} must take exactly one argument named "
                f"'ctx', got ({', '.join(params)})"
            )
        spec = build(
            KtstrTestSpec,
            f"@ktstr_test on {fn.__module__}.{fn.__qualname__}",
            scheduler=scheduler, payload=payload, workloads=tuple(workloads),
            llcs=llcs, cores=cores, threads=threads, numa_nodes=numa_nodes,
            memory_mb=memory_mb, duration_s=duration_s,
            workers_per_cgroup=workers_per_cgroup, watchdog_timeout_s=watchdog_timeout_s,
            extra_sched_args=tuple(extra_sched_args), required_flags=tuple(required_flags),
            excluded_flags=tuple(excluded_flags), expect_err=expect_err, config=config,
            checks=Assert(**{k: v for k, v in overrides.items() if k in _CHECK_FIELDS}),
            constraint_overrides={k: v for k, v in overrides.items()
                                  if k in _CONSTRAINT_FIELDS},
        )

        def test(ktstr_variant: Any, ktstr_session: Any, request: Any) -> None:
            run_test(fn, spec, ktstr_variant, ktstr_session, request)

        test.__name__ = fn.__name__
        test.__qualname__ = fn.__qualname__
        test.__doc__ = fn.__doc__
        test.__module__ = fn.__module__
        marks = list(getattr(fn, "pytestmark", []))
        test.pytestmark = marks  # type: ignore[attr-defined]
        setattr(test, SPEC_ATTR, spec)
        return test

    return decorate
