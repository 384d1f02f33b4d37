"""Reading a plan file on the client: every problem names the file, the line and what
was expected, before anything is sent to the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ktstr._problems import problem_lines
from ktstr.errors import UserError
from ktstr.service.plan import Plan

EXPECTED = "expected a mapping with sut: and runs: (see docs/plan.schema.json)"


def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest node of ``root`` along ``loc`` (pure)."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and \
                0 <= key < len(node.value):
            nxt = node.value[key]
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def load_plan_document(path: Path) -> dict[str, Any]:
    """The plan file's document, validated as a ``Plan`` (``UserError`` naming the file
    and line of each problem)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read plan {path}: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from exc
    if document is None:
        raise UserError(f"{path}: the plan is empty; {EXPECTED}")
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
        line = _node_line(root, ())
        raise UserError(f"{path}: line {line}: the plan is {kind}; {EXPECTED}")
    try:
        Plan.model_validate(document)
    except ValidationError as exc:
        lines = problem_lines(exc)
        located = []
        for err, problem in zip(exc.errors(include_url=False), lines, strict=False):
            line = _node_line(root, tuple(err.get("loc", ())))
            located.append(f"{path}: line {line}: {problem}" if line else f"{path}: {problem}")
        located += [f"{path}: {p}" for p in lines[len(located):]]
        raise UserError("invalid plan:\n  " + "\n  ".join(located)) from None
    return document
