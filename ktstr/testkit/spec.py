"""The validated spec ``@ktstr_test`` attaches to a test, and how to read it back.

Apart from the decorator so that what runs a test (``execute``, ``context``, ``variants``)
depends on the spec, not on the decorator that calls it.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from ktstr.declare.base import Frozen
from ktstr.declare.checks import Assert
from ktstr.declare.payload import Payload
from ktstr.declare.scheduler import EEVDF, Scheduler
from ktstr.declare.topology import Topology, TopologyConstraints
from ktstr.errors import UserError

SPEC_ATTR = "__ktstr_test__"


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
    def declared_payloads(self) -> tuple[Payload, ...]:
        """The payloads this test declares (``payload`` first, then ``workloads``)."""
        return ((self.payload,) if self.payload else ()) + self.workloads

    @property
    def checks_chain(self) -> Assert:
        return Assert.chain(self.scheduler.assert_, self.checks)


def spec_of(obj: object) -> KtstrTestSpec | None:
    spec = getattr(obj, SPEC_ATTR, None)
    return spec if isinstance(spec, KtstrTestSpec) else None
