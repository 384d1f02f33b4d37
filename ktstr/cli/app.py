"""The object every command receives as ``ctx.obj``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import click

from ktstr.declare.registry import Registry, default_registry


class App:
    def __init__(self, *, declaration_modules: Sequence[str] = (), verbose: int = 0) -> None:
        self.declaration_modules = tuple(declaration_modules)
        self.verbose = verbose

    @cached_property
    def registry(self) -> Registry:
        return default_registry(self.declaration_modules)

    @staticmethod
    def echo_json(data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


pass_app = click.make_pass_decorator(App)
