"""The base of every declaration: frozen, validated, no unknown fields.

``Frozen`` also lets a model take its leading fields positionally, so declarations
read like data: ``Topology(1, 2, 4, 1)``, ``Sysctl("kernel.foo", "1")``.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ktstr._problems import problem_lines
from ktstr.errors import DeclarationError


T = TypeVar("T", bound=BaseModel)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    #: field names that may be given positionally, in order
    _positional: ClassVar[tuple[str, ...]] = ()

    def __init__(self, /, *args: Any, **kwargs: Any) -> None:
        if args:
            names = self._positional
            if len(args) > len(names):
                raise TypeError(
                    f"{type(self).__name__} takes at most {len(names)} positional "
                    f"arguments ({', '.join(names) or 'none'}), got {len(args)}"
                )
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__} got {name!r} twice")
                kwargs[name] = value
        super().__init__(**kwargs)


def build(cls: type[T], label: str, **fields: Any) -> T:
    """Construct ``cls`` and turn a validation failure into a ``DeclarationError``."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise DeclarationError(label, problem_lines(exc)) from exc
