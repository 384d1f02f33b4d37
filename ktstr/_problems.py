"""Turn pydantic validation errors into one readable line per problem.

Each line names the field (``sysctls[0].key``), the bad value and the rule, without
pydantic's error codes or documentation URLs. Rules that involve several fields are
raised by model validators whose message already names the fields and their values, so
those lines carry only the message.
"""

from __future__ import annotations

import traceback
from types import TracebackType
from typing import Any

from pydantic import ValidationError

#: error types that are consequences of another error, not problems of their own
_CONSEQUENTIAL = frozenset({"default_factory_not_called"})
#: pydantic's prefixes for errors raised by our own validators
_PREFIXES = ("Value error, ", "Assertion failed, ")


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith("function-") or item in {"tagged-union", "union"}:
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem_lines(exc: ValidationError) -> list[str]:
    """``field: bad value is invalid: rule`` for each error of ``exc``."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        kind = str(err.get("type", ""))
        if kind in _CONSEQUENTIAL:
            continue
        msg = str(err.get("msg", "invalid"))
        for prefix in _PREFIXES:
            msg = msg.removeprefix(prefix)
        field = _loc(tuple(err.get("loc", ())))
        if not field:
            # a rule across fields (a model validator): the message names them
            lines.append(msg)
        elif kind == "missing":
            lines.append(f"{field}: is required")
        elif kind == "extra_forbidden":
            lines.append(f"{field}: {short_repr(err.get('input'))} is invalid: no such field")
        elif "input" in err:
            lines.append(f"{field}: {short_repr(err['input'])} is invalid: {msg}")
        else:
            lines.append(f"{field}: {msg}")
    return lines or [str(exc)]


def where_in(tb: TracebackType | None, filename: str | None) -> str:
    """``file:line`` of the deepest frame of ``tb`` that ran in ``filename``, or ``""``."""
    if tb is None or not filename:
        return ""
    frames = [f for f in traceback.extract_tb(tb) if f.filename == filename]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
