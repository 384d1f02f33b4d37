"""Optional dependencies: which extra a command needs, and the message when it is missing.

The core harness (kernels, images, VMs, runs, the pytest plugin) installs with plain
``pip install ktstr``; the queued-plan service and its client, PostgreSQL, and the
statistics and plots of ``ktstr compare`` / ``ktstr report`` are extras.
"""

from __future__ import annotations

import importlib.util

from ktstr.errors import UserError

#: extra -> the top-level modules it provides (checked without importing them)
EXTRAS: dict[str, tuple[str, ...]] = {
    "service": ("fastapi", "uvicorn", "sqlalchemy", "alembic", "httpx"),
    "postgres": ("psycopg",),
    # ktstr.cli.compare.need_compare_extra imports these (it uses them right after)
    "compare": ("scipy", "matplotlib"),
}


def missing_module(extra: str) -> str | None:
    """The first module of ``extra`` that is not installed, or None."""
    for module in EXTRAS[extra]:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def need_extra(extra: str, what: str = "this command") -> None:
    """``UserError`` naming the extra to install when one of its modules is missing."""
    module = missing_module(extra)
    if module is not None:
        raise UserError(f"{what} needs the '{extra}' extra ({module} is missing): "
                        f"pip install 'ktstr[{extra}]'")
