"""Turn pydantic validation errors into one readable line per problem."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith("function-") or item in {"tagged-union", "union"}:
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(value)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def problem_lines(exc: ValidationError) -> list[str]:
    """``field: bad value -> rule`` for each error, without pydantic's URLs."""
    lines = []
    for err in exc.errors(include_url=False):
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        field = _loc(tuple(err.get("loc", ())))
        if err.get("type") == "missing":
            lines.append(f"{field}: is required")
        elif "input" in err and err.get("type") != "extra_forbidden":
            lines.append(f"{field}: {_short(err['input'])} is invalid: {msg}")
        elif err.get("type") == "extra_forbidden":
            lines.append(f"{field}: unknown field")
        else:
            lines.append(f"{field}: {msg}")
    return lines
