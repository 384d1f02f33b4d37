"""The ``@ktstr_test(...)`` decorator and the validated spec it attaches to a test.

The test body runs **on the host**, in the pytest process: the guest has no Python, and
keeping the body on the host lets it make ordinary assertions on the ``RunResult`` (stats,
checks, the timeline) that ``ctx.run`` returns after the VM has finished.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Self

from pydantic import Field, model_validator

from ktstr.declare.base import Frozen, build
from ktstr.declare.checks import Assert
from ktstr.declare.payload import Payload
from ktstr.declare.scheduler import EEVDF, Scheduler
from ktstr.declare.topology import Topology, TopologyConstraints
from ktstr.errors import UserError

SPEC_ATTR = "__ktstr_test__"
_CHECK_FIELDS = tuple(Assert.model_fields)
_CONSTRAINT_FIELDS = tuple(TopologyConstraints.model_fields)


class KtstrTestSpec(Frozen):
    """Everything ``@ktstr_test`` was given, validated at collection time."""

    scheduler: Scheduler = EEVDF
    payload: Payload | None = None
    workloads: tuple[Payload, ...] = ()
    numa_nodes: int | None = Field(None, ge=1)
    llcs: int | None = Field(None, ge=1)
    cores: int | None = Field(None, ge=1)
    threads: int | None = Field(None, ge=1)
    memory_mb: int | None = Field(None, ge=128)
    duration_s: float = Field(5.0, gt=0)
    workers_per_cgroup: int | None = Field(None, ge=1)
    watchdog_timeout_s: float | None = Field(None, gt=0)
    extra_sched_args: tuple[str, ...] = ()
    required_flags: tuple[str, ...] = ()
    excluded_flags: tuple[str, ...] = ()
    constraint_overrides: dict[str, int | bool] = Field(default_factory=dict)
    checks: Assert = Field(default_factory=Assert)
    expect_err: bool = False
    config: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        try:
            self.topology  # noqa: B018 - raises when the dimensions do not combine
        except (UserError, ValueError) as exc:
            raise ValueError(f"topology: {str(exc).splitlines()[-1]}") from exc
        flag_names = {f.name for f in self.scheduler.flags.flags}
        for f in (*self.required_flags, *self.excluded_flags):
            if f not in flag_names:
                raise ValueError(
                    f"flag {f!r} is not a flag of scheduler {self.scheduler.name!r} "
                    f"(its flags: {', '.join(sorted(flag_names)) or 'none'})"
                )
        both = set(self.required_flags) & set(self.excluded_flags)
        if both:
            raise ValueError(f"flags both required and excluded: {', '.join(sorted(both))}")
        if self.config is not None and self.scheduler.config_file_def is None:
            raise ValueError(
                f"config= needs a scheduler with config_file_def; {self.scheduler.name!r} has "
                "none (declare config_file_def=('--config={file}', '/include-files/x.json'))"
            )
        if self.scheduler.config_file_def is not None and self.config is None:
            raise ValueError(
                f"scheduler {self.scheduler.name!r} declares config_file_def: pass its inline "
                "content with config=..."
            )
        self.constraints  # noqa: B018 - validates the overrides
        return self

    @property
    def topology(self) -> Topology:
        """The scheduler's topology with this test's explicit dimensions."""
        return self.scheduler.resolve_topology(
            numa_nodes=self.numa_nodes, llcs=self.llcs, cores=self.cores, threads=self.threads
        )

    @property
    def constraints(self) -> TopologyConstraints:
        return self.scheduler.constraints.model_copy(update=self.constraint_overrides)

    @property
    def checks_chain(self) -> Assert:
        return Assert.chain(self.scheduler.assert_, self.checks)


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
            from ktstr.testkit.execute import run_test

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


def spec_of(obj: object) -> KtstrTestSpec | None:
    spec = getattr(obj, SPEC_ATTR, None)
    return spec if isinstance(spec, KtstrTestSpec) else None
