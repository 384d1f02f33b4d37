"""The base of every declaration: frozen, validated, no unknown fields.

``Frozen`` also lets a model take its leading fields positionally, so declarations
read like data: ``Topology(1, 2, 4, 1)``, ``Sysctl("kernel.foo", "1")``. Models that
allow this list the names in ``_positional`` and spell the signature out for type
checkers in an ``if TYPE_CHECKING:`` ``__init__``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

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

    @classmethod
    def positional_dict(cls, values: tuple[Any, ...] | list[Any], what: str) -> dict[str, Any]:
        """``values`` named by ``_positional``; a wrong count is a ``ValueError`` that
        spells the expected shape (for use inside validators)."""
        names = cls._positional
        if len(values) != len(names):
            raise ValueError(
                f"{what} is ({', '.join(names)}): {len(names)} values, got {len(values)}"
            )
        return dict(zip(names, values, strict=True))


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name: str, what: str) -> str:
    """A declaration name: it appears in test ids, file names and on the command line."""
    if not _NAME.match(name):
        raise ValueError(
            f"a {what} name starts with a letter or digit and uses only letters, digits, "
            "'_', '.' and '-'"
        )
    return name


#: one problem found by a model validator: (location, bad value, rule)
Problem = tuple[tuple[str | int, ...], Any, str]


def problems_error(title: str, problems: Sequence[Problem]) -> ValidationError:
    """A ``ValidationError`` with one entry per problem, for a model validator to raise
    when a rule spans fields: pydantic reports each at its own location, so every
    problem becomes its own readable line."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("declaration_rule", "{rule}", {"rule": rule}),
                loc=loc,
                input=value,
            )
            for loc, value, rule in problems
        ],
    )


def build(cls: type[T], label: str, **fields: Any) -> T:
    """Construct ``cls`` and turn a validation failure into a ``DeclarationError``."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise DeclarationError(label, problem_lines(exc)) from exc
