"""``Scenario``: cgroups for the whole run, or a sequence of steps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import Field, field_validator, model_validator

from ktstr.declare.base import Frozen, check_name
from ktstr.declare.payload import Payload
from ktstr.errors import UserError
from ktstr.scenario.cgroup import CgroupDef
from ktstr.scenario.steps import AddCgroup, Hold, RunPayload, Step


class Scenario(Frozen):
    """What runs beside the scheduler: steps of operations and holds.

    Build it with ``Scenario.from_defs([...])`` (cgroups that run for the whole
    duration), ``Scenario.from_steps([...])``, or ``Scenario.coerce(defs_or_steps)``.
    """

    name: str = Field("custom", description="shown in results; canned scenarios by name")
    description: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)
    canned: bool = Field(False, description="built by ``canned_scenario``, so ``ktstr run "
                                            "--scenario NAME`` rebuilds it by name")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_name(name, "scenario")

    @field_validator("steps", mode="before")
    @classmethod
    def _tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _open_loop_last(self) -> Scenario:
        for i, step in enumerate(self.steps[:-1]):
            if step.hold.open_ended:
                raise ValueError(f"step {i + 1}: Hold.loop without frac runs to the end of "
                                 "the scenario, so it must be the last step; give it frac=")
        return self

    @classmethod
    def from_defs(cls, defs: Iterable[CgroupDef], *, name: str = "custom",
                  description: str = "") -> Scenario:
        """The cgroups created (workers two-phase started) and held for the duration."""
        ops = [AddCgroup(cgroup=d) for d in defs]
        if not ops:
            raise UserError("a scenario needs at least one CgroupDef")
        return cls(name=name, description=description,
                   steps=(Step(ops=tuple(ops), hold=Hold.frac(1.0)),))

    @classmethod
    def from_steps(cls, steps: Iterable[Step], *, name: str = "custom",
                   description: str = "") -> Scenario:
        return cls(name=name, description=description, steps=tuple(steps))

    @classmethod
    def coerce(cls, value: Scenario | Sequence[CgroupDef] | Sequence[Step]) -> Scenario:
        """A ``Scenario`` from a scenario, a list of ``CgroupDef`` or a list of ``Step``."""
        if isinstance(value, Scenario):
            return value
        items = list(value)
        if items and all(isinstance(i, CgroupDef) for i in items):
            return cls.from_defs(items)  # type: ignore[arg-type]
        if items and all(isinstance(i, Step) for i in items):
            return cls.from_steps(items)  # type: ignore[arg-type]
        kinds = sorted({type(i).__name__ for i in items}) or ["nothing"]
        raise UserError(f"a scenario is a list of CgroupDef or a list of Step, not "
                        f"{', '.join(kinds)}: wrap cgroups that change mid-run in Steps")

    def payloads(self) -> list[Payload]:
        seen: dict[str, Payload] = {}
        for step in self.steps:
            for op in step.ops:
                if isinstance(op, RunPayload):
                    seen.setdefault(op.payload.name, op.payload)
        return list(seen.values())

    def executables(self) -> list[str]:
        """Host executables the guest needs (payload binaries)."""
        return sorted({p.executable for p in self.payloads() if p.executable})
