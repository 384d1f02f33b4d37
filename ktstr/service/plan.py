"""The plan a user submits: which SUT class, which ktstr cells, how often, how long.

This is the wire and file format (YAML or JSON); ``docs/plan.schema.json`` is generated
from ``Plan``. Durations are written ``90s``, ``5m``, ``1h30m`` or as plain seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from ktstr.declare.base import Frozen

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1h30m"`` (pure; ``ValueError`` if bad)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text such as 90s, 5m, 1h30m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        m = _DURATION.match(text)
        if not text or not m or not any(m.groups()):
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a duration: use seconds (90) or text such as "
                    "90s, 5m, 1h30m"
                ) from None
        else:
            h, mi, s = m.groups()
            seconds = int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
    else:
        raise ValueError("a duration is a number of seconds or text such as 90s, 5m, 1h30m")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec else "")
    return out or "0s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$|^\d+(\.\d+)?$"},
        ],
        "description": "seconds, or text such as 90s, 5m, 1h30m",
    }),
]

Name = Annotated[str, Field(min_length=1, max_length=200)]


class SutTarget(Frozen):
    """Plans target a SUT class, never one SUT."""

    sutclass: Name


class Defaults(Frozen):
    timeout: Duration = Field(600.0, description="per job, before the service's slack")
    repeats: int = Field(1, ge=1, le=1000)
    duration: Duration = Field(20.0, description="scenario duration passed to ktstr run")


class Run(Frozen):
    """One block of cells: kernels x schedulers x (topologies + presets) x (tests or
    the verifier), each ``repeats`` times."""

    kernels: list[Name] = Field(min_length=1)
    schedulers: list[Name] = Field(min_length=1)
    topologies: list[Name] = Field(default_factory=list,
                                   description="N,L,C,T or labels such as 1n2l2c1t")
    presets: list[Name] = Field(default_factory=list, description="gauntlet preset names")
    tests: list[Name] = Field(default_factory=list,
                              description="test names; empty runs the default scenario")
    verifier: bool = Field(False, description="run the BPF verifier cell instead of tests")
    repeats: int | None = Field(None, ge=1, le=1000)
    timeout: Duration | None = None
    duration: Duration | None = None

    @model_validator(mode="after")
    def _tests_or_verifier(self) -> Run:
        if self.verifier and self.tests:
            raise ValueError("give tests or verifier: true, not both")
        return self


class Plan(Frozen):
    sut: SutTarget
    runs: list[Run] = Field(min_length=1)
    defaults: Defaults = Defaults()
    priority: int | None = Field(None, ge=0, le=100,
                                 description="higher runs first; plan-exec --priority wins")
    name: str | None = Field(None, max_length=200)
    files: list[Name] = Field(default_factory=list, description=(
        "extra files (e.g. config files) made available to the SUT as files/NAME in the "
        "job's work directory: upload:NAME values, uploaded with the plan"))


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``Plan`` as written to docs/plan.schema.json."""
    schema = Plan.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ktstr plan"
    return schema


def render_plan_schema() -> str:
    """The text of docs/plan.schema.json (regenerate: ``python -m ktstr.service.plan``)."""
    import json

    return json.dumps(plan_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render_plan_schema())
