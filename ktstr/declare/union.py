"""Tagged unions of declarations: one small frozen model per form, told apart by ``kind``.

A union's interface (``SchedulerSpec``, ``MetricCheck``, ``CpusetSpec``, ``Hold``)
subclasses ``TaggedUnion``: it holds the constructors users call
(``SchedulerSpec.discover(name)``) and what every form answers (``describe()``), and it
names its forms in ``variants``. Each form is a ``Variant`` that also inherits the
interface, so the interface is the type to annotate with and to test with
``isinstance``; narrow to a form (``isinstance``, ``match``) to read its own fields.

As a field type, the interface validates as the pydantic discriminated union
``Annotated[A | B | ..., Field(discriminator="kind")]``. A bad value becomes one message
naming the rule and how to build the value, instead of pydantic's error per form.
"""

from __future__ import annotations

import functools
import operator
from abc import ABC
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self, cast

from pydantic import (
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import CoreSchema, ErrorDetails

from ktstr._problems import short_repr
from ktstr.declare.base import Frozen


class Variant(Frozen):
    """One form of a tagged union: its ``kind`` is a ``Literal`` whose default is that
    tag, so a form is built without naming it."""

    #: a required field that is missing -> the rule to report
    needs: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def tag(cls) -> str:
        return str(cls.model_fields["kind"].default)


class TaggedUnion(ABC):  # noqa: B024 (each interface declares its abstract methods)
    """The interface of a tagged union; subclasses set ``variants`` below their forms."""

    #: the forms, in order
    variants: ClassVar[tuple[type[Variant], ...]] = ()
    #: how a value is built, for messages: "SchedulerSpec.discover(name), ..."
    usage: ClassVar[str] = ""
    #: a field given to a form that does not take it -> the rule naming its owner
    misplaced: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def coerce(cls, value: Any) -> Any:
        """A shorthand turned into the value it means (``ValueError`` if it is bad)."""
        return value

    @classmethod
    def model_validate(cls, obj: Any) -> Self:
        """``obj`` (a form, or a mapping with its ``kind``) as the form it names."""
        return cast(Self, _adapter(cls).validate_python(obj))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> CoreSchema:
        return handler.generate_schema(union_type(cls))

    @classmethod
    def explain(cls, exc: ValidationError) -> list[str]:
        """One rule per problem of the union's ``exc``, without pydantic's per-form
        locations."""
        forms = {v.tag(): v for v in cls.variants}
        rules: list[str] = []
        for err in exc.errors(include_url=False):
            rule = _rule(cls, forms, err)
            if rule not in rules:
                rules.append(rule)
        return rules


@functools.cache
def union_type(iface: type[TaggedUnion]) -> Any:
    """``Annotated[A | B | ..., Field(discriminator="kind")]`` over ``iface.variants``,
    reporting a bad value as one message."""
    if not iface.variants:
        raise TypeError(f"{iface.__name__}.variants is not set")

    def one_message(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(iface.coerce(value))
        except ValidationError as exc:
            raise ValueError("; ".join(iface.explain(exc))) from exc

    members: Any = functools.reduce(operator.or_, iface.variants)
    return Annotated[members, Field(discriminator="kind"), WrapValidator(one_message)]


@functools.cache
def _adapter(iface: type[TaggedUnion]) -> TypeAdapter[Any]:
    return TypeAdapter(union_type(iface), config=ConfigDict(title=iface.__name__))


def _rule(iface: type[TaggedUnion], forms: Mapping[str, type[Variant]],
          err: ErrorDetails) -> str:
    kind, loc = err["type"], err["loc"]
    tags = ", ".join(forms)
    build = f"; build it with {iface.usage}" if iface.usage else ""
    if kind == "union_tag_invalid":
        return f"kind {err.get('ctx', {}).get('tag')!r} is not one of {tags}{build}"
    if kind == "union_tag_not_found":
        return f"a {iface.__name__} needs a kind, one of {tags}{build}"
    if not loc or str(loc[0]) not in forms:
        return f"a {iface.__name__} is built with {iface.usage or tags}, not " \
               f"{short_repr(err.get('input'))}"
    form = forms[str(loc[0])]
    field = ".".join(str(part) for part in loc[1:])
    if kind == "missing":
        return form.needs.get(field, f"{form.tag()} needs {field}")
    if kind == "extra_forbidden":
        if field in iface.misplaced:
            return iface.misplaced[field]
        owners = [tag for tag, v in forms.items() if field in v.model_fields]
        if owners:
            return f"{field} belongs to {', '.join(owners)} only, not {form.tag()}"
        return f"{form.tag()} has no field {field!r} (its fields: " \
               f"{', '.join(f for f in form.model_fields if f != 'kind') or 'none'})"
    message = str(err["msg"]).removeprefix("Value error, ")
    if not field or kind == "value_error":  # the form's own rule: it names what is wrong
        return message
    return f"{field}: {short_repr(err.get('input'))} is invalid: {message}"
