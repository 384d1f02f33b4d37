"""One jinja2 environment over the ``initramfs/`` templates shipped in the package.

Strict: an undefined variable is an error, not an empty string. No autoescape (these are
shell scripts, not HTML); trailing newlines are kept. The ``shquote`` filter quotes a
value for a POSIX shell: ``{{ path | shquote }}`` → ``'/a b/c'``; a list becomes its
quoted items joined by spaces.

The folder is ``$KTSTR_INITRAMFS_DIR`` when set, else the package's ``ktstr/initramfs/``
(the repository's top-level ``initramfs/`` links to it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ktstr.errors import InfraError, UserError
from ktstr.resources import package_path

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

ENV_VAR = "KTSTR_INITRAMFS_DIR"


def templates_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return package_path("ktstr", "initramfs")


def shquote(value: object) -> str:
    """POSIX single-quote quoting; lists and tuples become space-separated quoted words."""
    if isinstance(value, list | tuple):
        return " ".join(shquote(item) for item in value)
    if value is None or isinstance(value, dict | set):
        raise UserError(f"shquote takes a string, number, path or list, not {value!r}")
    text = str(value)
    return "'" + text.replace("'", "'\\''") + "'"


@lru_cache(maxsize=4)
def _environment(directory: str) -> jinja2.Environment:
    import jinja2  # a warm run renders nothing: jinja2 stays off its import path

    if not Path(directory).is_dir():
        raise InfraError(
            f"initramfs template folder {directory} does not exist; "
            f"set {ENV_VAR} to a folder of initramfs templates, or reinstall ktstr"
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=False,
    )
    env.filters["shquote"] = shquote
    return env


def environment() -> jinja2.Environment:
    """The cached environment for the current template folder."""
    return _environment(str(templates_dir()))


def template_names() -> list[str]:
    return sorted(environment().list_templates())


def render(template_name: str, /, **context: Any) -> str:
    """Render ``template_name`` (a path inside the folder) with ``context``."""
    import jinja2

    env = environment()
    try:
        template = env.get_template(template_name)
    except jinja2.TemplateNotFound as exc:
        raise UserError(
            f"no initramfs template {template_name!r} in {templates_dir()}; "
            f"known templates: {', '.join(_templates_only(env.list_templates()))}"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(
            f"initramfs template {exc.filename or template_name}:{exc.lineno}: {exc.message}"
        ) from exc
    try:
        return template.render(**context)
    except jinja2.UndefinedError as exc:
        raise UserError(
            f"rendering initramfs template {template_name!r}: {exc.message}; "
            f"pass it to render() (given: {', '.join(sorted(context)) or 'nothing'})"
        ) from exc


def _templates_only(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.endswith(".j2"))
