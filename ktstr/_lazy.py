"""Package namespaces that import their names on first use.

``import ktstr`` (and ``ktstr.declare``, ``ktstr.scenario``, ``ktstr.testkit``) used to
import every declaration model, and building pydantic models is most of what importing
costs: ~0.3 s before a pytest-xdist controller, which needs none of them, could start
its workers. A package lists its public names and the module each lives in; PEP 562's
module ``__getattr__`` imports that module when a name is first used, and caches the
name in the package's namespace.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str],
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each public
    name to the module that defines it."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
