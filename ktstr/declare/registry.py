"""Declarations and the registry they are collected into.

``declare_scheduler`` / ``declare_payload`` build a declaration and record it in the
declaring module's ``Declarations`` (the module-level ``__ktstr_declarations__``), or in
the ``Declarations`` passed as ``into=``. Nothing is global: a ``Registry`` is an explicit
object that loads declaration modules (by name, or every module named in the
``ktstr.declarations`` entry-point group) and rejects duplicates atomically.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from ktstr._problems import problem_lines, where_in
from ktstr.declare.base import build
from ktstr.declare.payload import Payload
from ktstr.declare.scheduler import EEVDF, Scheduler
from ktstr.errors import DeclarationError, DuplicateNameError, UnknownNameError, UserError

ENTRY_POINT_GROUP = "ktstr.declarations"
MODULE_ATTR = "__ktstr_declarations__"


class Declarations:
    """The schedulers and payloads one module declares (a blueprint)."""

    def __init__(self, source: str = "") -> None:
        self.source = source
        self.schedulers: dict[str, Scheduler] = {}
        self.payloads: dict[str, Payload] = {}

    def add_scheduler(self, scheduler: Scheduler) -> Scheduler:
        if scheduler.name in self.schedulers:
            raise DuplicateNameError("scheduler", scheduler.name)
        self.schedulers[scheduler.name] = scheduler
        return scheduler

    def add_payload(self, payload: Payload) -> Payload:
        if payload.name in self.payloads:
            raise DuplicateNameError("payload", payload.name)
        self.payloads[payload.name] = payload
        return payload


def _caller_declarations(depth: int) -> tuple[Declarations, str]:
    frame = sys._getframe(depth + 1)
    module_globals = frame.f_globals
    decls = module_globals.get(MODULE_ATTR)
    if not isinstance(decls, Declarations):
        decls = Declarations(source=str(module_globals.get("__name__", "?")))
        module_globals[MODULE_ATTR] = decls
    where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    return decls, where


def declare_scheduler(*, into: Declarations | None = None, **fields: Any) -> Scheduler:
    """Build a ``Scheduler`` and register it (the verifier sweep will see it).

    Fields are those of ``Scheduler``; ``binary`` may be a bare name (discover), an
    absolute path, or a ``SchedulerSpec``; ``topology`` may be a 4-tuple.
    """
    target, where = (into, "") if into is not None else _caller_declarations(1)
    label = f"scheduler {fields.get('name', '?')!r}" + (f" ({where})" if where else "")
    return target.add_scheduler(build(Scheduler, label, **fields))


def declare_payload(*, into: Declarations | None = None, **fields: Any) -> Payload:
    """Build a ``Payload`` and register it."""
    target, where = (into, "") if into is not None else _caller_declarations(1)
    label = f"payload {fields.get('name', '?')!r}" + (f" ({where})" if where else "")
    return target.add_payload(build(Payload, label, **fields))


class Registry:
    """Every scheduler and payload known to one ktstr invocation (or one test)."""

    def __init__(self, *, builtins: bool = True) -> None:
        self._schedulers: dict[str, Scheduler] = {}
        self._payloads: dict[str, Payload] = {}
        self._origin: dict[tuple[str, str], str] = {}
        self._loaded: set[str] = set()
        if builtins:
            self._schedulers[EEVDF.name] = EEVDF
            self._origin[("scheduler", EEVDF.name)] = "ktstr (built-in)"

    # -- adding ------------------------------------------------------------------

    def add(self, decls: Declarations, source: str | None = None) -> None:
        """Add every declaration of ``decls``, or none of them if any name is taken."""
        source = source or decls.source or "?"
        for kind, names, known in (
            ("scheduler", decls.schedulers, self._schedulers),
            ("payload", decls.payloads, self._payloads),
        ):
            for name in names:
                if name in known:
                    raise DuplicateNameError(
                        kind, name, first=self._origin[(kind, name)], second=source
                    )
        for name, sched in decls.schedulers.items():
            self._schedulers[name] = sched
            self._origin[("scheduler", name)] = source
        for name, payload in decls.payloads.items():
            self._payloads[name] = payload
            self._origin[("payload", name)] = source

    def add_module(self, module: ModuleType) -> None:
        if module.__name__ in self._loaded:
            return
        decls = getattr(module, MODULE_ATTR, None)
        if isinstance(decls, Declarations):
            self.add(decls, module.__name__)
        self._loaded.add(module.__name__)

    def load_module(self, name: str) -> None:
        """Import a declarations module by name and add what it declares."""
        self.add_module(import_declarations(name))

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every module registered under the ``ktstr.declarations`` group."""
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            obj = import_declarations(ep.value, ep.load)
            if isinstance(obj, ModuleType):
                self.add_module(obj)
            elif isinstance(obj, Declarations):
                self.add(obj, f"{ep.value}")
            else:
                raise UserError(
                    f"entry point {ep.name!r} in group {group!r} names {ep.value!r}, which is "
                    "neither a module nor a ktstr Declarations object"
                )

    # -- lookup ------------------------------------------------------------------

    def scheduler(self, name: str) -> Scheduler:
        try:
            return self._schedulers[name]
        except KeyError:
            raise UnknownNameError("scheduler", name, self._schedulers) from None

    def payload(self, name: str) -> Payload:
        try:
            return self._payloads[name]
        except KeyError:
            raise UnknownNameError("payload", name, self._payloads) from None

    def schedulers(self) -> list[Scheduler]:
        return [self._schedulers[n] for n in sorted(self._schedulers)]

    def payloads(self) -> list[Payload]:
        return [self._payloads[n] for n in sorted(self._payloads)]

    def origin(self, kind: str, name: str) -> str:
        return self._origin.get((kind, name), "?")

    def swept_schedulers(self) -> list[Scheduler]:
        """Registered schedulers with a BPF binary to verify (not EEVDF/kernel-builtin)."""
        return [s for s in self.schedulers() if s.binary.has_binary]


def _load_file(path: Path) -> ModuleType:
    """A declarations module given as a file: imported under its stem."""
    if not path.is_file():
        raise UserError(f"declarations file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load {str(path)!r} as a Python module (is it a .py file?)")
    return _exec_spec(spec)


def _exec_spec(spec: importlib.machinery.ModuleSpec) -> ModuleType:
    assert spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def _import_module(name: str) -> ModuleType:
    """``name`` as a module: a file path (``./my_scheds.py``), an importable module, or a
    module in the current directory (a console script does not put it on ``sys.path``,
    unlike ``python -m``); the current directory is searched without changing
    ``sys.path``."""
    if name.endswith(".py") or os.sep in name:
        return _load_file(Path(name).expanduser().resolve())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        if exc.name != top:
            raise
        spec = importlib.machinery.PathFinder.find_spec(top, [os.getcwd()])
        if spec is None:
            raise
        _exec_spec(spec)
        return importlib.import_module(name)


def _origin(name: str) -> str | None:
    if name.endswith(".py") or os.sep in name:
        return str(Path(name).expanduser().resolve())
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None):
        return str(module.__file__)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec else None


def import_declarations(name: str, load: Callable[[], object] | None = None) -> Any:
    """Import a declarations module (or run an entry point's ``load``), turning a model
    built invalidly at import time into a ``DeclarationError`` that names the module,
    the line, the model, and one problem per line."""
    try:
        return load() if load is not None else _import_module(name)
    except ModuleNotFoundError as exc:
        raise UserError(
            f"cannot import declarations module {name!r}: {exc}; give an importable module "
            "name, a module in the current directory, or a file path (-d ./my_scheds.py)"
        ) from exc
    except ValidationError as exc:
        module_name = name.partition(":")[0]
        where = where_in(exc.__traceback__, _origin(module_name))
        label = f"{exc.title} in {module_name}" + (f" ({where})" if where else "")
        raise DeclarationError(label, problem_lines(exc)) from exc


def default_registry(extra_modules: Iterable[str] = ()) -> Registry:
    """A registry with the built-ins, the entry-point declarations and ``extra_modules``."""
    reg = Registry()
    reg.load_entry_points()
    for name in extra_modules:
        reg.load_module(name)
    return reg
