"""Bridge from ``ctx.run(defs_or_steps)`` to the scenario layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ktstr.errors import UserError
from ktstr.testkit.spec import KtstrTestSpec


def scenario_request_fields(defs_or_steps: Sequence[Any], spec: KtstrTestSpec) -> dict[str, Any]:
    """``RunRequest`` fields that run these cgroup definitions or steps."""
    try:
        from ktstr import scenario as scen
    except ImportError as exc:  # the scenario layer ships with ktstr; this is a broken install
        raise UserError(f"cgroup scenarios are unavailable: {exc}") from exc
    builder = getattr(scen, "request_fields", None)
    if builder is None:
        raise UserError("this ktstr has no scenario runner (ktstr.scenario.request_fields)")
    fields: dict[str, Any] = builder(list(defs_or_steps), checks=spec.checks)
    return fields
